"""The request binding: which request an assertion was made for, as a claim the app recomputes.

    req = BASE64URL( SHA-256( METHOD SP request-target ) )      (no padding, RFC 7515 §2)

``METHOD`` is the upper-case method gatekeeper forwards; ``request-target`` is the origin-form
target on the request line the app receives (RFC 9112 §3.2.1): the canonical path gatekeeper
decided on and forwards, then ``?`` and the query exactly as received when there is a query.
``GET /orders/7?expand=items`` is hashed as those 26 ASCII bytes.

The query is bound. The policy may decide on it (the authorizer receives the query), and a
replayed assertion must not carry the decision about ``?account=mine`` over to ``?account=yours``.
It is also the simplest thing for an app to recompute: the bytes after the method on its own
request line (Node's ``req.url``, Go's ``r.RequestURI``, WSGI's ``RAW_URI``, ASGI's
``raw_path`` + ``?`` + ``query_string``), no decoding or normalising on either side. The cost is
one signature per distinct target and caller (cached per (caller, method, target)).
"""

from __future__ import annotations

import base64
import hashlib


def request_target(path: str, query: bytes) -> bytes:
    """The target the app receives (edge/proxy.py ``upstream_target``): the canonical path,
    plus ``?query`` when the query is not empty."""
    target = path.encode()
    return target + b"?" + query if query else target


def request_binding(method: str, target: bytes) -> str:
    """The ``req`` claim for ``method`` and ``target`` (see the module docstring)."""
    digest = hashlib.sha256(method.encode("latin-1") + b" " + target).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
