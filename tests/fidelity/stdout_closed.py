# Closing stdout: later prints fail; the error goes to stderr.
import sys

print("before close")
sys.stdout.close()
print("after close")
