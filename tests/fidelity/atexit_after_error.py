# An uncaught exception: the traceback comes before the atexit handlers.
import atexit
import sys

atexit.register(lambda: print("atexit runs after the traceback", file=sys.stderr))
atexit.register(lambda: print("last value seen by atexit:", repr(getattr(sys, "last_value", None))))
raise LookupError("boom")
