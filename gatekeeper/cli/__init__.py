"""The command line's tools beyond run and check: ``gatekeeper policy test`` and ``policy check``
(policy.py).
"""
