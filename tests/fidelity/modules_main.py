# The main module and what the script imported itself.
import sys

print("__main__" in sys.modules, sys.modules["__main__"].__name__)
import colorsys

print(colorsys.__name__, "colorsys" in sys.modules)
print(sys.path_importer_cache.get(sys.path[0]).__class__.__name__)
