# tempfile has cached nothing: the folder it uses follows TMPDIR as the
# script sets it.
import os
import tempfile

print("cached:", tempfile.tempdir)
here = os.path.dirname(os.path.abspath(__file__))
os.environ["TMPDIR"] = here
print("follows TMPDIR:", tempfile.gettempdir() == here or os.access(here, os.W_OK) is False)
print("name length:", len(os.path.basename(tempfile.mktemp())))
