import sys

try:
    print("try")
    raise ValueError("replaced by the exit")
finally:
    print("finally")
    sys.exit(9)
