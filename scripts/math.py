import sys, json; data = json.load(sys.stdin); result = data["x"] ** 2; print(json.dumps({"square": result}))
