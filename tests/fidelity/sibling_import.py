# A module beside the script is importable: sys.path[0] is its folder.
import os

import fidelity_helper

print(fidelity_helper.greet("sibling"))
print(os.path.basename(fidelity_helper.__file__), fidelity_helper.__name__)
print(fidelity_helper.caller_name())
with open(os.path.join(os.path.dirname(__file__), "fidelity_data.txt")) as f:
    print("data beside the script:", f.read().strip())
with open("fidelity_data.txt") as f:
    print("relative to the working directory:", f.read().strip())
fidelity_helper.fail()
