"""A test's scratch folder, emptied before each run only when an earlier run of a test made it: a
wrong path on the command line never loses a user's files."""
import os
import shutil
import sys

MARKER = ".aios-test-scratch"


def fresh_scratch_dir(path: str) -> str:
    path = os.path.abspath(path)
    if os.path.exists(path):
        if os.listdir(path) and not os.path.exists(os.path.join(path, MARKER)):
            sys.exit(f"{path}: exists and was not made by an aios test; give an empty or new folder")
        shutil.rmtree(path)
    os.makedirs(path)
    open(os.path.join(path, MARKER), "w").close()
    return path
