# The same shutdown work after sys.exit with a code.
import atexit
import sys


class Loud:
    def __del__(self):
        print("del at shutdown", file=sys.stderr)
        sys.stdout.write("unterminated output from __del__")


keep = Loud()
atexit.register(print, "atexit")
sys.exit(4)
