# Reads one line and leaves the rest unread.
import sys

print("first line:", sys.stdin.readline().rstrip("\n"))
