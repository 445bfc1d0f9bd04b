# Chained exceptions: explicit (raise from), implicit, and suppressed.
class AppError(Exception):
    pass


def load(data):
    try:
        return int(data)
    except ValueError as e:
        raise AppError("bad data %r" % data) from e


def cleanup():
    try:
        {}["missing"]
    except KeyError:
        raise RuntimeError("while handling")


try:
    cleanup()
except RuntimeError as e:
    print("caught:", repr(e), repr(e.__context__))

try:
    try:
        load("x")
    except AppError:
        raise TypeError("suppressed") from None
except TypeError as e:
    print("suppressed context:", e.__suppress_context__)

load("not a number")
