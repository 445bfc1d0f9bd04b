# warnings: their location follows stacklevel; beyond the stack they are
# attributed to "sys", line 1.
import warnings


def deprecated_api():
    warnings.warn("use something else", DeprecationWarning, stacklevel=2)


def deep(level):
    warnings.warn("deep level %d" % level, UserWarning, stacklevel=level)


warnings.warn("top level")
warnings.warn("top level, stacklevel 2", stacklevel=2)
warnings.warn("top level, stacklevel 5", RuntimeWarning, stacklevel=5)
deprecated_api()
deep(1)
deep(2)
deep(3)
deep(9)
for i in range(3):
    warnings.warn("in a loop: shown once")
warnings.warn("a FutureWarning", FutureWarning)
warnings.warn("a PendingDeprecationWarning is ignored", PendingDeprecationWarning)
print("done")
