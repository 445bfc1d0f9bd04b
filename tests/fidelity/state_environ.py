# The environment, in order: os.environ, what the kernel shows, and what a
# child process inherits are the same list, PWD last.
import os
import subprocess

keys = list(os.environ)
print(keys)
print("PWD:", os.environ["PWD"] == os.getcwd(), keys[-1])
with open("/proc/self/environ", "rb") as f:
    shown = [kv.split(b"=", 1)[0].decode() for kv in f.read().split(b"\0") if kv]
print("/proc/self/environ:", shown == keys)
out = subprocess.run(["/usr/bin/env", "-0"], capture_output=True, check=True).stdout
inherited = [kv.split(b"=", 1)[0].decode() for kv in out.split(b"\0") if kv]
print("inherited:", inherited == keys)
