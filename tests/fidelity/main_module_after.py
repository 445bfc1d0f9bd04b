# __file__ and __cached__ are removed from __main__ once the script ends
# normally; atexit handlers see that.
import atexit
import sys


def show():
    m = sys.modules["__main__"]
    print("at exit:", hasattr(m, "__file__"), hasattr(m, "__cached__"), type(m.__loader__).__name__)


atexit.register(show)
print("running:", "__file__" in globals())
