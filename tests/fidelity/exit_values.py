# Exit codes beyond a byte, negative ones, and other objects.
import sys

code = sys.argv[1] if len(sys.argv) > 1 else ""
print("argv", sys.argv[1:])
try:
    raise SystemExit(256 + 7)
except SystemExit as e:
    print("caught", e.code)
try:
    sys.exit(ValueError("an exception object"))
finally:
    print("finally runs")
