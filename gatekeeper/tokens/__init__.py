"""JSON Web Signatures and the keys that verify them: one JWS reader (jws.py), each issuer's JWKS
(jwks.py).
"""
