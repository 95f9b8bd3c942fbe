"""The untrusted side: the process that imports a student's code and computes what it is asked.

Nothing here decides a score. It imports only the standard library, NumPy and `grader.boundary.wire`;
torch is imported when a tensor crosses or the student's code imports it.
"""
