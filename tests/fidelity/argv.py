import os
import sys

print(sys.argv[1:])
print(os.path.basename(sys.argv[0]), sys.argv[0] == __file__)
print(len(sys.orig_argv), sys.orig_argv[0] == sys.executable, sys.orig_argv[2:])
