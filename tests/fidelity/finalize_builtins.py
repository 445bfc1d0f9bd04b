# A function of __main__ kept in builtins: CPython puts builtins back as it
# started before it tears the modules down, so what it held goes then, and
# __main__'s globals are finalized with the modules.
import builtins


class Noisy:
    def __init__(self, name):
        self.name = name

    def __del__(self):
        print("finalized", self.name)


def helper():
    return keep


builtins.scripthost_helper = helper
builtins.scripthost_object = Noisy("held by builtins")
keep = Noisy("a global")
print("end of the script")
