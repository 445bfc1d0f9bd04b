import sys

for name in ("stdin", "stdout", "stderr"):
    s = getattr(sys, name)
    print(name, s.name, s.mode, s.encoding, s.errors, s.line_buffering,
          s.write_through, s.newlines, repr(s._CHUNK_SIZE), s.fileno(),
          type(s.buffer).__name__, s.buffer.name, s.buffer.raw.name, s.buffer.raw.mode,
          s.buffer.raw.closefd, s is getattr(sys, "__%s__" % name))
print(sys.stdout.buffer.raw._blksize)
