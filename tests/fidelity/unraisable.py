# Exceptions in __del__ are reported as unraisable, also at shutdown. The
# report names the function with its address, so a hook prints it here.
import sys


def hook(u):
    print("unraisable:", u.err_msg, u.exc_type.__name__, u.exc_value, u.object.__qualname__, file=sys.stderr)


sys.unraisablehook = hook


class Noisy:
    def __init__(self, name):
        self.name = name

    def __del__(self):
        raise RuntimeError("in __del__ of " + self.name)


a = Noisy("a")
del a
keep = Noisy("kept until shutdown")
print("done")
