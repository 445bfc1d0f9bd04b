# stdout is block buffered on a pipe, stderr line buffered: each stream
# keeps its own order whatever the flushing.
import sys

for i in range(5):
    print("out", i)
    print("err", i, file=sys.stderr)
    if i == 2:
        sys.stdout.flush()
sys.stderr.write("partial line without newline")
sys.stdout.write("stdout tail without newline")
