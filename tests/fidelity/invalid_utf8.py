# Raw bytes that are not UTF-8, through the binary buffers.
import sys

sys.stdout.write("text then bytes: ")
sys.stdout.flush()
sys.stdout.buffer.write(b"\xff\xfe\x80 \xc3\x28 \xed\xa0\x80\n")
sys.stderr.buffer.write(b"stderr bytes: \xff\x00\x01\n")
sys.stdout.buffer.write(bytes(range(256)))
