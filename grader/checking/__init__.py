"""How a check compares a student's answer with the truth: comparisons and their messages, numeric
gradient checks and their diagnosis, test inputs, and the shared checks of several assignments.
"""
