# Children inherit the run's stdio, environment and working directory.
import os
import subprocess
import sys

sys.stdout.flush()
subprocess.run([sys.executable, "-c", "import os, sys; print('child', os.getcwd() == sys.argv[1], os.environ.get('PWD') == sys.argv[1])", os.getcwd()], check=True)
r = subprocess.run([sys.executable, "-c", "import sys; print(sys.stdin.read()); print('to stderr', file=sys.stderr)"], input="via pipe", capture_output=True, text=True)
print("captured:", repr(r.stdout), repr(r.stderr), r.returncode)
sys.stdout.flush()
os.system("echo from a shell; echo shell stderr >&2")
print("pgid is own pid:", os.getpgid(0) == os.getpid())
print("exit", subprocess.call([sys.executable, "-c", "import sys; sys.exit(4)"]))
