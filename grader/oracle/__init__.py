"""The truth a check compares with: the instructor's reference run in its own worker, the recorded
fixtures, and the catalogue of known mistakes with the sketches that recognise them.
"""
