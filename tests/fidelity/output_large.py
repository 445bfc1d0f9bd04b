# More output than a pipe holds, on both streams, without flushing.
import sys

for i in range(20000):
    sys.stdout.write("line %05d of stdout\n" % i)
    if i % 7 == 0:
        sys.stderr.write("line %05d of stderr\n" % i)
sys.stdout.write("no final newline")
