# A helper module imported by sibling_import.py; run on its own it says so.
import sys


def greet(who):
    return "hello from the helper, " + who


def caller_name():
    return sys._getframe(1).f_globals["__name__"]


def fail():
    raise RuntimeError("raised in the helper module")


if __name__ == "__main__":
    print("helper run as a script")
