import sys


def hook(kind, value, tb):
    print("custom hook:", kind.__name__, value, file=sys.stderr)


sys.excepthook = hook
raise ValueError("handled by the hook")
