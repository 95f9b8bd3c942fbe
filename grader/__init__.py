"""Autograding harness for deep-learning assignments.

Kept import-free: the untrusted worker imports `grader.worker`, which must not pull in the
trusted side's dependencies.
"""

import os

__version__ = "0.1.0"

# Pydantic plugins installed on the machine do not run inside the grader (no more than pytest's do),
# and their search through every installed package's metadata is not made at each start.
os.environ["PYDANTIC_DISABLE_PLUGINS"] = "__all__"
