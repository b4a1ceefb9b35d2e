"""The query string of a login route, read strictly, and the return addresses it may name."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qs, urlsplit

from gatekeeper.errors import LoginFailed
from gatekeeper.redirects import safe_redirect
from gatekeeper.request import RequestView


def params(request: RequestView) -> dict[str, str]:
    """Query parameters, each at most once: a repeated state or code is refused, not guessed."""
    try:
        parsed = parse_qs(request.query.decode("latin-1"), keep_blank_values=True,
                          max_num_fields=32, errors="strict")
    except ValueError as exc:  # not UTF-8 once decoded, or too many fields
        raise LoginFailed("the query string is malformed", code="login_bad_request") from exc
    repeated = [name for name, values in parsed.items() if len(values) > 1]
    if repeated:
        raise LoginFailed(f"parameter {repeated[0][:20]!r} is repeated", code="login_bad_request")
    return {name: values[0] for name, values in parsed.items()}


def params_or_empty(request: RequestView) -> dict[str, str]:
    try:
        return params(request)
    except LoginFailed:
        return {}


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class ReturnAddresses:
    """Every return address (``rd``, the page a login started from) passes ``safe_redirect``:
    a same-origin path or an allow-listed domain, else ``/``."""

    def __init__(self, allowed_domains: Sequence[str]) -> None:
        self._allowed = list(allowed_domains)

    def safe(self, value: str | None) -> str:
        return safe_redirect(value, allowed_domains=self._allowed)
