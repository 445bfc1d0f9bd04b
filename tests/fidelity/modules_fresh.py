# What a fresh interpreter has imported, and what an import adds: the
# modules, in order, and submodules bound to their packages only once
# imported.
import sys

ours = ("_scripthost_finalizer", "_scripthost_exit")
before = [m for m in sys.modules if m not in ours]
print(before)
import urllib

try:
    urllib.parse
except AttributeError as e:
    print("AttributeError:", e)
import json

print([m for m in sys.modules if m not in ours and m not in before])
import urllib.parse

print(urllib.parse.quote("a b/c"))
import email
print(hasattr(email, "utils"), hasattr(email, "parser"))
import email.parser
print(hasattr(email, "utils"), hasattr(email, "parser"), hasattr(email, "feedparser"))
import collections
print(hasattr(collections, "abc"))
import concurrent

print(hasattr(concurrent, "futures"))
import encodings

print(sorted(n for n in dir(encodings) if not n.startswith("_") and isinstance(getattr(encodings, n), type(sys))))
# A package's submodules are also its globals: handed over, they work.
import re
import email.utils
import concurrent.futures

print(re.sub("a+", "b", "caaat"), email.utils.formataddr(("Zoë", "z@example.com")))
print(concurrent.futures.ThreadPoolExecutor.__name__)
