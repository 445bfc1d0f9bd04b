import locale
import os
import sys

print(sorted(k for k in os.environ if k.startswith("SCRIPTHOST_FIDELITY")))
print(os.environ.get("SCRIPTHOST_FIDELITY_VALUE"))
print(locale.getpreferredencoding(False), locale.getlocale())
print(os.umask(0o22) == os.umask(0o22))
print(os.get_inheritable(0), os.get_inheritable(1), os.get_inheritable(2))
fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
print("open fds:", fds)
print(sys.getrecursionlimit(), sys.getdefaultencoding())
