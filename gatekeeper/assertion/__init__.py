"""The signed identity assertion: a short-lived JWT per allowed request, for the app to verify.

Identity headers are only as good as the network around the app: whoever reaches its port
around gatekeeper can write ``X-Auth-Request-User`` too. The assertion is signed by gatekeeper's
own key and bound to one request, so an app that verifies it — signature (JWKS), ``iss``,
``aud``, ``exp`` and ``req`` against its own request line — trusts no header, only the key.

    keys.py     PEM files → KeyRing (signing key, published keys, the JWKS body; kid = RFC 7638)
    binding.py  the ``req`` claim: SHA-256 of "METHOD target", the query included (and why)
    signer.py   the claims, the signature, the (caller, method, target) cache
    reload.py   the key files checked for a change; a good new set swapped in, a bad one refused

The pipeline calls the signer as its last stage (``Pipeline(assertions=…)``); the JWKS is served
at ``JWKS_PATH`` on the admin listener (ops/admin.py) and, when asked, on ``listen``
(edge/jwks.py). docs/identity-assertion.md is the user's side: verifying in Python, Go, Node.
"""

JWKS_PATH = "/.well-known/gatekeeper/jwks.json"
# Short: the next key of a rotation must reach the apps' caches before it signs (docs).
JWKS_CACHE_CONTROL = b"public, max-age=60"
