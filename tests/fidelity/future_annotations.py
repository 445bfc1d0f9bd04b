from __future__ import annotations

count: int = 3
name: "str"
print(sorted(globals()))
print(__annotations__)
