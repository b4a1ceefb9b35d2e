"""Tokens: reading JWTs and their claims, for every door a token comes through.

    jws.py       the strict JWS compact reader (canonical base64url only), before any key work
    jwks.py      an issuer's signing keys: discovery, JWKS fetch and refresh, stale-on-failure
    verify.py    the one JWS verification (alg allow-list, key, signature, PyJWT's claim checks)
                 behind bearer tokens (authn/bearer.py), ID and logout tokens (oidc/idtoken.py)
    claims.py    reading claim paths: roles, identity header values, the claims a session keeps
"""
