"""Refuse a request whose query string asks the app for another method (400).

The policy decided on the request line's method. Symfony and Laravel (``_method`` when
``httpMethodParameterOverride`` is on) and Express's ``method-override('_method')`` read the
method from the query string instead, so ``POST /items/1?_method=DELETE`` would run a DELETE that
the policy never saw. Gatekeeper forwards the query byte for byte and will not rewrite it (a
signed URL would break), so such a request is refused, whatever its method: one framework's
"only on POST" is not every framework's. Header overrides (``X-HTTP-Method-Override``…) are
stripped instead (``headernames``). A ``_method`` field in a form *body* cannot be seen without
buffering bodies: docs/sidecar.md tells apps to switch body overrides off.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from gatekeeper.errors import BadRequest
from gatekeeper.headernames import fold

__all__ = ["refuse_method_override"]

# Folded parameter names (``_`` folds to ``-``): Rack/Symfony/Laravel/Express ``_method`` and
# the override headers' names, which some libraries also take as query parameters.
_OVERRIDE_PARAMETERS = frozenset({b"-method", b"x-http-method-override", b"x-http-method",
                                  b"x-method-override"})
# "&" everywhere; ";" too for older parsers (Python's before 3.9.2, some Java servlets).
_SEPARATOR = re.compile(rb"[&;]")


def refuse_method_override(query: bytes) -> None:
    """Raise ``BadRequest`` if a query parameter's name reads as a method override.

    A name is read the way the loosest framework reads it: ``+`` as space and escapes decoded
    once, surrounding spaces dropped (PHP), ``.``/``-``/``_`` and case alike, and a PHP array
    suffix ignored — ``_method``, ``%5Fmethod``, ``_METHOD``, ``.method``, ``_method[]``,
    ``_method[x]`` all match.
    """
    if b"method" not in query.lower() and b"%" not in query:
        return  # the common case, without splitting
    for pair in _SEPARATOR.split(query):
        name = unquote_to_bytes(pair.split(b"=", 1)[0].replace(b"+", b" ")).strip()
        name = name[:1] + name[1:].partition(b"[")[0]  # "_method[x]": PHP's array named _method
        if fold(name).rstrip(b"-") in _OVERRIDE_PARAMETERS:
            raise BadRequest("the query string overrides the method", code="method_override")
