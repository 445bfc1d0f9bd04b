# The usual script: JSON on stdin, JSON on stdout.
import json
import sys

first = sys.stdin.readline()
data = json.loads(first)
rest = sys.stdin.read()
print(json.dumps({"got": data, "x_squared": data.get("x", 0) ** 2, "rest": rest}, ensure_ascii=False, sort_keys=True))
