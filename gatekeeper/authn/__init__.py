"""Authentication, the pipeline's first stage: a bearer JWT (bearer.py) or a browser session
(session.py) → Principal.
"""
