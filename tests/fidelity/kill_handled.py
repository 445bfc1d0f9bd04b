# A handler installed by the script, then SIGTERM with the default action.
import os
import signal
import sys


def handler(signum, frame):
    print("got signal", signal.Signals(signum).name, frame.f_code.co_name, flush=True)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


signal.signal(signal.SIGTERM, handler)
os.kill(os.getpid(), signal.SIGTERM)
