# Warnings the interpreter raises itself (at compile time, or from C with
# no warnings module imported) are printed by its C formatter, which keeps
# the trailing blanks of the source line.
import sys


def check(x):
    return x is 1   


print(check(1))
code = "\n" * 14 + "z = 3 is 3\n"
exec(compile(code, __file__, "exec"))
print("warnings" in sys.modules)
z = 4 is 4  # the line with the literal, compiled again above   
