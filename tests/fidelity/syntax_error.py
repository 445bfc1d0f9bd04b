# A SyntaxError: reported by the compiler before anything runs.
print("never printed")
def broken(:
    pass
