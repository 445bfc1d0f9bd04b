# __pycache__: the main script is never cached, imports are.
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
print(os.path.exists(os.path.join(here, "__pycache__", "pycache.cpython-%d%d.pyc" % sys.version_info[:2])))
