# Non-daemon threads finish before the interpreter exits; their output
# comes after the main module ends. Daemon threads are not waited for.
import threading
import time


def late(n, before):
    # Each waits for the main module to end, then for the one before it:
    # the order holds on a busy machine.
    while threading.main_thread().is_alive():
        time.sleep(0.005)
    if before is not None:
        before.join()
    print("late thread", n, flush=True)


def daemon():
    time.sleep(30)
    print("daemon never prints")


threading.Thread(target=daemon, daemon=True).start()
prev = None
for i in range(1, 4):
    prev = threading.Thread(target=late, args=(i, prev))
    prev.start()
print("main module done", threading.active_count())
