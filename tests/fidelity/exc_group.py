# An ExceptionGroup with nested groups and notes (Python 3.11+).
import sys

if sys.version_info < (3, 11):
    print("no exception groups before 3.11")
    raise SystemExit(0)

e = ValueError("one")
e.add_note("a note on one")
raise ExceptionGroup("outer", [e, ExceptionGroup("inner", [TypeError("two"), KeyError("three")])])
