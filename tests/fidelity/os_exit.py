# os._exit skips buffered output, atexit handlers and finalization.
import atexit
import os
import sys

atexit.register(print, "atexit never runs")
print("buffered, lost")
sys.stdout.write("also lost")
sys.stderr.write("stderr is line buffered: kept\n")
sys.stderr.write("no newline: lost")
os.write(1, b"written through the fd: kept\n")
os._exit(5)
