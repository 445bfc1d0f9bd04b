"""A docstring of the main module."""
import os
import sys

print(__name__, __doc__)
print(os.path.basename(__file__), os.path.isabs(__file__))
print(__file__ == sys.argv[0], __cached__, __package__, __spec__)
print(type(__loader__).__name__, __loader__.name, __loader__.path == __file__)
print(type(__builtins__).__name__, __builtins__ is __import__("builtins"))
print(sys.path[0] == os.path.dirname(os.path.realpath(__file__)))
print(os.getcwd() == os.path.dirname(os.path.realpath(__file__)))
print(os.environ.get("PWD") == os.path.dirname(__file__), list(os.environ)[-1])
import __main__
print(__main__.__dict__ is globals(), sys.modules["__main__"] is __main__)
print(sys._getframe().f_back, sys._getframe().f_code.co_filename == __file__)
