"""What both sides of the trust boundary share: the wire format, the protocol's operations and
replies, and the layout of the packages a worker imports.

The only grader code the worker imports besides `grader.worker`; it imports nothing else of
`grader`, and nothing here decides a score.
"""
