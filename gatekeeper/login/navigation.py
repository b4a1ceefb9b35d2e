"""Browser or API? Only a browser navigation is worth a redirect to a login page.

A navigation is a GET or HEAD whose Accept prefers HTML to JSON, not flagged as a script's
request (``X-Requested-With``, or ``Sec-Fetch-Mode`` other than ``navigate``). Everything else
— fetch/XHR, ``Accept: application/json``, a POST — gets a 401 it can act on: a redirect to an
HTML login page is useless to a script, and following it would hide the real problem.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from gatekeeper.request import RequestView


def accept_quality(accept: bytes, media_type: bytes) -> float:
    """The q-value ``accept`` gives ``media_type`` (exact match, else ``type/*``, else ``*/*``)."""
    family = media_type.split(b"/", 1)[0] + b"/*"
    best: dict[bytes, float] = {}
    for item in accept.split(b","):
        name, *params = (part.strip() for part in item.split(b";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition(b"=")
            if key.strip().lower() == b"q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        best.setdefault(name.lower(), quality)
    for candidate in (media_type, family, b"*/*"):
        if candidate in best:
            return best[candidate]
    return 0.0


def is_navigation(request: RequestView) -> bool:
    if request.method not in ("GET", "HEAD"):
        return False
    if request.header(b"x-requested-with") is not None:
        return False
    mode = request.header(b"sec-fetch-mode")
    if mode is not None and mode != b"navigate":
        return False
    accept = request.header(b"accept")
    if accept is None:
        return False
    accept = accept.lower()  # media types are case-insensitive (RFC 9110 §8.3.1)
    if b"html" not in accept:
        return False
    html = accept_quality(accept, b"text/html")
    json = accept_quality(accept, b"application/json")
    if html != json:
        return html > json
    # A tie: the one listed first is preferred ("text/html, application/json" is a browser's).
    position = accept.find(b"application/json")
    return html > 0 and (position < 0 or accept.find(b"text/html") < position)


def is_from_another_site(request: RequestView) -> bool:
    """The browser says another site sent this request (Fetch Metadata ``Sec-Fetch-Site``:
    ``cross-site``, or ``same-site``: another subdomain). A link the user followed on our own
    pages is ``same-origin``, a typed address or a bookmark ``none``. A browser without Fetch
    Metadata is judged by its ``Referer`` (another host: another site); non-browsers send
    neither."""
    site = request.header(b"sec-fetch-site")
    if site is not None:
        return site in (b"cross-site", b"same-site")
    referer = request.header(b"referer")
    return referer is not None and same_origin_target(request) is None


def same_origin_target(request: RequestView) -> str | None:
    """The path and query of the ``Referer`` when it names this host, else None."""
    referer, host = request.header(b"referer"), request.header(b"host")
    if not referer or not host:
        return None
    parts = urlsplit(referer.decode("latin-1"))
    if parts.netloc.lower() != host.decode("latin-1").lower() or not parts.path.startswith("/"):
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


_NESTED = frozenset({b"iframe", b"frame", b"embed", b"object", b"fencedframe"})


def is_nested(request: RequestView) -> bool:
    """A navigation inside a frame of another page (Fetch Metadata ``Sec-Fetch-Dest``)."""
    return request.header(b"sec-fetch-dest") in _NESTED
