# The seed's hello.py: nested quotes in an f-string need Python 3.12.
import json
import sys

data = json.load(sys.stdin) if not sys.stdin.isatty() else {}
print(f"Hello, {data.get("name", "world")}!")
