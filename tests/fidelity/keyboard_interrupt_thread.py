# KeyboardInterrupt with a non-daemon thread still running: the thread is
# joined first, then the interpreter ends by SIGINT.
import threading
import time


def work():
    time.sleep(0.1)
    print("thread finished", flush=True)


threading.Thread(target=work).start()
raise KeyboardInterrupt("stop")
