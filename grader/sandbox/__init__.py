"""The grader's side of the worker: isolation levels and their self-check, starting, watching and
stopping the worker process (memory, users, process trees), and the client that sends it requests.

Trusted code. The worker itself (`grader.worker`) never imports anything from here.
"""
