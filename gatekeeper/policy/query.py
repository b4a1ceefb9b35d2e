"""One query parameter, read as every common framework reads it — or not read at all.

A model may name a query parameter as an attribute of the request (attributes.py). The app
reads the same bytes (gatekeeper forwards the query as sent) with its own parser, and parsers
differ:

- a repeated name: werkzeug/Flask, aiohttp and Go's ``Query().Get`` take the first value,
  Starlette/FastAPI, Django and PHP the last, Express's ``qs`` an array of both;
- ``;`` as a separator: Python's ``parse_qsl`` before 3.10 (CVE-2021-23336), Rack before 3 and
  some servlet containers split there, the others keep it inside the value;
- the spelling of a name: every parser decodes ``own%65r`` to ``owner``; ASP.NET compares names
  without case; PHP drops leading spaces, reads ``owner[]`` as ``owner`` and ``own.er`` as
  ``own_er``;
- an escape that is not ``%`` and two hex digits, or that does not decode to UTF-8 (``%ff``):
  kept, replaced by U+FFFD, or an error, depending on the parser.

The value the policy checks must be the value the app acts on, so a parameter that one of these
could read otherwise is ``AMBIGUOUS``: a rule reading it fails (an allow does not apply, a deny
does). Otherwise the value is the one they all agree on: ``+`` is a space, escapes are decoded
once, as UTF-8, and a name without ``=`` has the empty value. A control character in the value
is ambiguous too (a C library stops at NUL).
"""

from __future__ import annotations

import enum
import re
from urllib.parse import unquote_to_bytes

from gatekeeper.headernames import fold

__all__ = ["AMBIGUOUS", "Reading", "query_parameter"]


class Reading(enum.Enum):
    AMBIGUOUS = "ambiguous"


AMBIGUOUS = Reading.AMBIGUOUS
_PRINTABLE = re.compile(rb"[\x21\x22\x24-\x7e]*")  # "#" would end the query for a parser
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _loose(raw_name: bytes) -> bytes:
    """The name as the loosest parser reads it: ``+`` a space, escapes decoded, surrounding
    spaces dropped, a PHP array suffix ignored, case and punctuation alike (``fold``)."""
    name = unquote_to_bytes(raw_name.replace(b"+", b" ")).strip()
    name = name[:1] + name[1:].partition(b"[")[0]
    return fold(name)


def _decoded(raw: bytes) -> str | None:
    """The text every parser agrees ``raw`` is, or None where they may differ."""
    if not _PRINTABLE.fullmatch(raw) or _BAD_ESCAPE.search(raw):
        return None
    try:
        text = unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if _CONTROL.search(text) else text


def query_parameter(query: bytes, name: str) -> str | Reading | None:
    """The value of the parameter ``name`` in the raw ``query``: None when it is not there,
    ``AMBIGUOUS`` when some common framework could read another value (module docstring)."""
    if not query:
        return None
    wanted = _loose(name.encode("ascii"))
    found: tuple[bytes, bytes] | None = None
    for pair in query.split(b"&"):
        for part in pair.split(b";"):
            raw_name, _, raw_value = part.partition(b"=")
            if _loose(raw_name) != wanted:
                continue
            if found is not None or b";" in pair:
                return AMBIGUOUS  # twice, or next to a ';' that only some parsers split at
            found = (raw_name, raw_value)
    if found is None:
        return None
    if _decoded(found[0]) != name:
        return AMBIGUOUS  # 'Owner', 'owner[]', ' owner': this name to some parsers only
    value = _decoded(found[1])
    return AMBIGUOUS if value is None else value
