# What an imported module holds, as a fresh import makes it: its globals in
# order, its spec, loader and package, and the submodules bound to it.
import sys
import types
import json
import collections.abc
import email.utils
import importlib.util

for m in (json, json.decoder, collections, collections.abc, email, email.utils, importlib, importlib.util):
    names = list(vars(m))
    print(m.__name__, type(m) is types.ModuleType, names[:8], len(names))
    print(" ", m.__spec__.name == m.__name__, type(m.__loader__).__name__, repr(m.__package__),
          m.__spec__.parent, repr(m).split(" from ")[0])
print([n for n in vars(email) if isinstance(getattr(email, n), types.ModuleType)])
