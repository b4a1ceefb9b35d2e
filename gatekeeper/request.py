"""A read-only view of the incoming request that every pipeline stage shares."""

from __future__ import annotations

from typing import Any

from gatekeeper.cookies import CookieJar, request_cookies


class RequestView:
    __slots__ = ("_cookies", "client", "headers", "method", "path", "query", "raw_path", "scheme",
                 "set_cookies")

    def __init__(self, scope: dict[str, Any], path: str) -> None:
        # Matched and forwarded upper-case: a lowercase "get" must not slip past rules written
        # for GET (keycloak-gatekeeper CVE-2020-14359), and the app sees what was decided.
        method: str = scope.get("method", "GET")
        self.method = method if method.isupper() else method.upper()
        self.raw_path: bytes = scope.get("raw_path") or scope["path"].encode("latin-1")
        self.query: bytes = scope.get("query_string", b"")
        self.headers: list[tuple[bytes, bytes]] = scope["headers"]
        client = scope.get("client")
        self.client: str = client[0] if client else ""
        self.scheme: str = scope.get("scheme", "http")
        self.path = path  # canonical path: what the policy sees and the app receives
        self._cookies: dict[str, str] | None = None
        # Cookies the answer must set, whatever it is (session refreshed or ended, login state).
        self.set_cookies: CookieJar | None = None

    def cookies_out(self) -> CookieJar:
        if self.set_cookies is None:
            self.set_cookies = CookieJar()
        return self.set_cookies

    def header_values(self, name: bytes) -> list[bytes]:
        """All values of a header; ``name`` in lower case (ASGI servers lower-case names)."""
        return [v for k, v in self.headers if k == name]

    def header(self, name: bytes) -> bytes | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def cookie(self, name: str) -> str | None:
        if self._cookies is None:
            self._cookies = request_cookies(self.header_values(b"cookie"))
        value = self._cookies.get(name)
        if value is not None and len(value) > 1 and value[0] == value[-1] == '"':
            return value[1:-1]  # a DQUOTE-wrapped cookie-value (RFC 6265 §4.1.1)
        return value
