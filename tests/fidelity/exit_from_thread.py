# sys.exit in a thread ends only the thread.
import sys
import threading

t = threading.Thread(target=sys.exit, args=(5,))
t.start()
t.join()
print("main still here")
