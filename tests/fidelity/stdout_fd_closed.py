# fd 1 closed under a buffered stdout: the final flush fails, the failure
# is reported, and the exit code is 120.
import os

print("buffered, cannot be written")
os.close(1)
