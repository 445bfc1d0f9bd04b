# What runs while the interpreter shuts down, and in which order: atexit,
# weakref finalizers, __del__ of module globals, of objects in reference
# cycles, of objects held by an imported module, and C-level stdio.
import atexit
import ctypes
import gc
import sys
import weakref

import fidelity_helper


class Loud:
    def __init__(self, name):
        self.name = name

    def __del__(self):
        sys.stdout.write("del %s; " % self.name)
        print("del", self.name, file=sys.stderr)


class Node:
    pass


def report():
    print("atexit: gc enabled", gc.isenabled())


atexit.register(report)
glob = Loud("module global")
cycle = Node()
cycle.self = cycle
cycle.loud = Loud("in a cycle")
fidelity_helper.keep = Loud("held by the helper module")
token = Node()
weakref.finalize(token, print, "weakref.finalize at exit")
libc = ctypes.CDLL(None)
libc.printf(b"C printf, flushed by exit()\n")
del cycle
print("main ends")
