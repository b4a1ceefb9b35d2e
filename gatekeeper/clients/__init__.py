"""The clients to services gatekeeper depends on: Redis (redis.py) and issuers' HTTP endpoints
(controlplane.py).
"""
