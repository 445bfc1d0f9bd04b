# Unicode on both streams, and what strict encoding does with a lone
# surrogate (stdout) and backslashreplace (stderr).
import sys

print("héllo wörld — ✓ 日本語 🐍")
print("combining: e\u0301, zero width: a\u200bb, rtl: \u05e9\u05dc\u05d5\u05dd")
print("stderr: ünïcödé 🐍", file=sys.stderr)
print("lone surrogate on stderr: \udcff", file=sys.stderr)
print(sys.stdout.encoding, sys.stdout.errors, sys.stderr.errors)
sys.stdout.flush()
print("lone surrogate on stdout: \udcff")
