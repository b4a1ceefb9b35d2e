"""How a login route builds its answer: an ``Answer`` value (edge/responses.py) that the edge
sends, so the routes never touch ``send``.

Every answer is gatekeeper's own (``own_headers``: the request id, ``no-store``); its Set-Cookie
headers are the request's cookie jar, which the edge adds to whatever answer starts. Bodies are
built by edge/responses.py (JSON) and edge/pages.py (HTML).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gatekeeper.edge import pages
from gatekeeper.edge.responses import HTML, Answer, Header, json_answer_body, own_headers
from gatekeeper.principal import Decision, Outcome


def redirect(request_id: str, location: str, reason: str,
             decision: Decision | None = None) -> Answer:
    """302 to ``location``, a URL gatekeeper built or checked (``safe_redirect``)."""
    headers = (*own_headers(request_id), (b"location", location.encode("ascii")))
    return Answer(302, decision or Decision(Outcome.UNAUTHENTICATED, reason), headers)


def json_answer(request_id: str, status: int, fields: Mapping[str, Any], decision: Decision,
                extra_headers: Sequence[Header] = ()) -> Answer:
    body = json_answer_body(fields, request_id)
    return Answer(status, decision, (*own_headers(request_id), *extra_headers),
                  b"application/json", body)


def page(request_id: str, status: int, decision: Decision, title: str, message: str, *,
         actions: Sequence[tuple[str, str]] = (), detail: str | None = None, top: bool = False,
         extra_headers: Sequence[Header] = ()) -> Answer:
    body = pages.render(title, message, actions=actions, detail=detail, request_id=request_id,
                        top=top)
    return Answer(status, decision, (*own_headers(request_id), *extra_headers), HTML, body)
