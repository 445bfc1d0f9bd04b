# sys.path and the path importer cache as a fresh interpreter has them at
# the start of a script: the script's own file looked up, its folder first.
import os
import sys

print(sys.path)
print(list(sys.path_importer_cache))
print(repr(sys.path_importer_cache.get(os.path.abspath(__file__), "missing")))
print("user site:", any(p.endswith("site-packages") and "/.local/" in p for p in sys.path))
