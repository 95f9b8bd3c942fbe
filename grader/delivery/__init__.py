"""What leaves the grader for students, instructors and platforms: the submission zip, the student
bundle a release writes, and the Gradescope autograder with its runner.
"""
