# SystemExit raised in an atexit handler is ignored quietly.
import atexit
import sys

atexit.register(sys.exit, 7)
atexit.register(print, "registered last, runs first")
print("main")
