"""The few HTML pages gatekeeper shows a browser: sign-in chooser, errors, access denied.

One small template, inline CSS, no script and no external assets (works without JS, under any
Content-Security-Policy the app sets, and behind an air gap). Every value is HTML-escaped.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

_STYLE = (
    "body{font:16px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;background:#f4f5f7;"
    "color:#1f2328;margin:0;display:flex;min-height:100vh;align-items:center;justify-content:center}"
    "main{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:2rem 2.5rem;"
    "max-width:28rem;box-shadow:0 1px 3px rgba(0,0,0,.06)}"
    "h1{font-size:1.25rem;margin:0 0 .75rem}p{margin:.5rem 0}small{color:#656d76}"
    "a.button{display:block;margin:.6rem 0;padding:.6rem 1rem;border-radius:6px;background:#0969da;"
    "color:#fff;text-decoration:none;text-align:center}a.button:hover{background:#0550ae}"
    "code{background:#f6f8fa;padding:0 .25rem;border-radius:4px}"
)


# For a page whose button does something (sign out): no other site may frame it under a decoy
# and have the user click through (clickjacking).
NOT_FRAMED: tuple[tuple[bytes, bytes], ...] = (
    (b"x-frame-options", b"DENY"), (b"content-security-policy", b"frame-ancestors 'none'"))


def render(
    title: str,
    message: str,
    *,
    actions: Sequence[tuple[str, str]] = (),
    detail: str | None = None,
    request_id: str | None = None,
    top: bool = False,
) -> bytes:
    """``actions``: (label, href) buttons; hrefs are built by gatekeeper, escaped here anyway.
    ``top``: the buttons open in the top window (a page shown inside a frame)."""
    target = ' target="_top"' if top else ""
    buttons = "".join(f'<a class="button" href="{html.escape(href)}"{target}>{html.escape(label)}</a>'
                      for label, href in actions)
    extra = f"<p><small>{html.escape(detail)}</small></p>" if detail else ""
    reference = (f"<p><small>Request id <code>{html.escape(request_id)}</code></small></p>"
                 if request_id else "")
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body><main>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>{buttons}{extra}{reference}"
        "</main></body></html>"
    ).encode()
