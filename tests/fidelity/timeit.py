# A sibling named like a standard module: beside a script, it is what the
# script imports (shadow_stdlib.py).
WHO = "the sibling timeit.py"
