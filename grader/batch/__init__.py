"""Batch grading: many submissions of one assignment, each graded in a grader process of its own,
results kept in an SQLite database as they finish so that a batch resumes where it stopped."""
