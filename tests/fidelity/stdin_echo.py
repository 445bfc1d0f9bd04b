import sys

data = sys.stdin.read()
sys.stdout.write(data)
print(len(data), repr(data[-10:]), file=sys.stderr)
