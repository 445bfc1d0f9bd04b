import sys

print(sys.flags)
print(sys.dont_write_bytecode, sys.hash_info.algorithm, sys.getrecursionlimit())
print(sys.getdefaultencoding(), sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())
print(sys.warnoptions, sys._xoptions)
print(sys.executable == sys.orig_argv[0], sys.prefix == sys.base_prefix)
print(sys.stdin.isatty(), sys.stdout.isatty(), sys.stderr.isatty())
print(sys.getswitchinterval(), sys.is_finalizing())
