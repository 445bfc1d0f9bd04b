# With sys.excepthook set to a function of __main__, __main__'s globals are
# still finalized at exit: __del__ runs, and a NamedTemporaryFile is gone.
import os
import sys
import tempfile


class Noisy:
    def __init__(self, name):
        self.name = name

    def __del__(self):
        print("finalized", self.name)


def hook(kind, value, tb):
    print("hook:", kind.__name__)


sys.excepthook = hook
keep = Noisy("a global")
here = os.path.dirname(os.path.abspath(__file__))
temp = tempfile.NamedTemporaryFile(prefix="scripthost-fidelity-", dir=here if os.access(here, os.W_OK) else None)
path = temp.name
print("exists:", os.path.exists(path))


class Check:
    def __del__(self):
        print("left behind:", os.path.exists(path))


check = Check()
print("end of the script")
