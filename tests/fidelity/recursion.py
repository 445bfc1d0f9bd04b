# A RecursionError's long traceback, with its repeated-lines summary.
def down(n):
    return down(n + 1)


down(0)
