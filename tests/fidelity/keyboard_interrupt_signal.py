# SIGINT sent to itself: the default handler raises KeyboardInterrupt.
import os
import signal
import time

print("handler is default_int_handler:", signal.getsignal(signal.SIGINT) is signal.default_int_handler)
os.kill(os.getpid(), signal.SIGINT)
time.sleep(5)
print("never")
