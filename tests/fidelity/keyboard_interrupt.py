# An uncaught KeyboardInterrupt: traceback, finalization (atexit, threads),
# then the interpreter kills itself with SIGINT.
import atexit

atexit.register(print, "atexit still runs")
print("before")


def f():
    raise KeyboardInterrupt


f()
