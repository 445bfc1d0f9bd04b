# What a script sees of the stack under it: nothing.
import inspect
import sys
import traceback

traceback.print_stack()
print(len(inspect.stack()), inspect.stack()[0].function)


def f():
    traceback.print_stack(file=sys.stdout)
    return [fr.function for fr in inspect.stack()]


print(f())
print(sys._getframe().f_back is None, sys._getframe(0).f_lineno)
try:
    sys._getframe(1)
except ValueError as e:
    print("ValueError:", e)
