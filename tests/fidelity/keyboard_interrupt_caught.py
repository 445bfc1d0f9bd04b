import sys

try:
    raise KeyboardInterrupt
except KeyboardInterrupt:
    print("caught")
sys.exit(0)
