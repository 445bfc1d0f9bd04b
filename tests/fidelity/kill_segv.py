import os
import signal
import sys

print("about to segfault (lost: buffered)")
sys.stderr.write("stderr kept\n")
os.kill(os.getpid(), signal.SIGSEGV)
