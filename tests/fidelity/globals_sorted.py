print(sorted(globals()))
print(list(globals()))
x = 1
print([k for k in globals() if not k.startswith("__")])
