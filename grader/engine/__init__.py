"""Grading one submission: intake of its files (folders, zips, notebooks), the pytest run of the
assignment's checks, the training tasks, and the assembled result.
"""
