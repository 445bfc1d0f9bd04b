# A file beside the script shadows a standard module of the same name
# (timeit.py here) as under python3: the folder of the script comes first.
import sys

print("timeit" in sys.modules)
import timeit

print(getattr(timeit, "WHO", "the standard timeit"))
print(timeit.__file__.endswith("/timeit.py"), hasattr(timeit, "Timer"))
