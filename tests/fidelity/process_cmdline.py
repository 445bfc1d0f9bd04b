# The process looks like `python3 /abs/script.py args`: /proc/self/cmdline,
# what ps shows, and re-executing oneself from /proc/self/cmdline.
import os
import subprocess
import sys

with open("/proc/self/cmdline", "rb") as f:
    cmdline = f.read().split(b"\0")[:-1]
print([os.fsdecode(a) for a in cmdline[1:]] == sys.argv, cmdline[0] == os.fsencode(sys.orig_argv[0]))
ps = subprocess.run(["ps", "-o", "args=", "-p", str(os.getpid())], capture_output=True, text=True)
print(ps.returncode, ps.stdout.split()[:2] == [sys.orig_argv[0], os.path.abspath(__file__)])
if os.environ.get("SCRIPTHOST_FIDELITY_REEXEC") != "1":
    os.environ["SCRIPTHOST_FIDELITY_REEXEC"] = "1"
    sys.stdout.flush()
    os.execv(sys.executable, [os.fsdecode(a) for a in cmdline])
print("re-executed with", sys.argv[1:])
