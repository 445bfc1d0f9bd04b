# threading's view of the thread a script runs on: the main thread, as a
# fresh interpreter's threading module makes it (fork mode makes it ahead,
# in the warm process, when that process imported threading).
import os
import threading

main = threading.main_thread()
print(main is threading.current_thread(), main.name, main.daemon, main.is_alive())
print(main.ident == threading.get_ident(), main.native_id == threading.get_native_id() == os.getpid())
print(threading.active_count(), [t.name for t in threading.enumerate()])
worker = threading.Thread(target=lambda: None, name="worker")
worker.start()
worker.join()
print(threading.active_count(), worker.is_alive(), main.is_alive())
