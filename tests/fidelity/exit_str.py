import sys

print("out")
sys.exit("fatal: a message goes to stderr, exit code 1")
