# A script that raises its stack limit and recurses deeply, as competitive
# programming solutions do (each level goes through C: lru_cache): it needs
# far more than 8 MiB of stack, which the limit it set allows. (Python 3.12
# and later bound such C recursion by a count instead.)
import functools
import resource
import sys

resource.setrlimit(resource.RLIMIT_STACK, (512 << 20, resource.getrlimit(resource.RLIMIT_STACK)[1]))
sys.setrecursionlimit(1 << 20)


@functools.lru_cache(maxsize=None)
def depth(n):
    return 0 if n == 0 else 1 + depth(n - 1)


try:
    print(depth(100000))
except RecursionError:
    print("RecursionError")
