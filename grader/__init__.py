"""Autograding harness for deep-learning assignments.

Kept import-free: the untrusted worker imports `grader.worker`, which must not pull in the
trusted side's dependencies.
"""

__version__ = "0.1.0"
