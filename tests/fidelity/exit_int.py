import sys

print("exiting with 3")
sys.stdout.write("unflushed but flushed at exit")
sys.exit(3)
