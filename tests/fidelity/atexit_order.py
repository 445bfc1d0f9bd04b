# atexit handlers run last-in first-out after the main module, after
# non-daemon threads; a failing handler is reported and the others run.
import atexit
import sys


def handler(name):
    print("atexit", name)


class Failing:
    # A repr without an address, so that the report is reproducible.
    def __repr__(self):
        return "<Failing handler>"

    def __call__(self):
        raise RuntimeError("atexit failure")


failing = Failing()


atexit.register(handler, "first registered")
atexit.register(failing)
atexit.register(handler, "last registered")
print("main done", atexit._ncallbacks())
