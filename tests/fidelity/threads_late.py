# Non-daemon threads finish before the interpreter exits; their output
# comes after the main module ends. Daemon threads are not waited for.
import threading
import time


def late(n):
    time.sleep(0.05 * n)
    print("late thread", n, flush=True)


def daemon():
    time.sleep(30)
    print("daemon never prints")


threading.Thread(target=daemon, daemon=True).start()
for i in range(1, 4):
    threading.Thread(target=late, args=(i,)).start()
print("main module done", threading.active_count())
