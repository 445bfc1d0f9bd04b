# An uncaught exception: traceback on stderr, exit code 1.
def inner(x):
    return 1 / x


def outer():
    return inner(0)


print("before")
outer()
print("never")
