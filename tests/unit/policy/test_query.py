"""A query parameter the policy reads is the one the app reads: differential tests against the
query parsers of Starlette, werkzeug (Flask), aiohttp and Django, used through each framework's
own request object.

The rule under test (gatekeeper/policy/query.py): a value gatekeeper reads is the value every
one of these frameworks reads; a parameter it calls absent is absent to all of them; where they
could differ it reads AMBIGUOUS (a failing term, never a value).
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Callable
from functools import cache

import pytest
from aiohttp.test_utils import make_mocked_request
from starlette.requests import Request as StarletteRequest
from werkzeug.wrappers import Request as WerkzeugRequest

from gatekeeper.policy.query import AMBIGUOUS, Reading, query_parameter

NAME = "owner"


def starlette(query: bytes) -> str | None:
    return StarletteRequest({"type": "http", "query_string": query, "headers": []}
                            ).query_params.get(NAME)


def werkzeug(query: bytes) -> str | None:
    return WerkzeugRequest({"QUERY_STRING": query.decode("latin-1"), "REQUEST_METHOD": "GET",
                            "SERVER_NAME": "x", "SERVER_PORT": "80", "wsgi.url_scheme": "http"}
                           ).args.get(NAME)


def aiohttp(query: bytes) -> str | None:
    value = make_mocked_request("GET", "/?" + query.decode("latin-1")).query.get(NAME)
    return value if value is None else str(value)


# Django needs configured settings: read in a process of its own, not in the test's.
_DJANGO = """
import json, sys
from django.conf import settings
settings.configure(DEBUG=False, ALLOWED_HOSTS=["*"])
import django
django.setup()
from django.core.handlers.wsgi import WSGIRequest
out = []
for query in json.load(sys.stdin):
    environ = {"QUERY_STRING": query, "REQUEST_METHOD": "GET", "PATH_INFO": "/",
               "SERVER_NAME": "x", "SERVER_PORT": "80", "wsgi.input": sys.stdin.buffer}
    out.append(WSGIRequest(environ).GET.get(sys.argv[1]))
print(json.dumps(out))
"""


@cache
def django_readings(queries: tuple[bytes, ...]) -> dict[bytes, str | None]:
    result = subprocess.run([sys.executable, "-c", _DJANGO, NAME], capture_output=True, text=True,
                            input=json.dumps([q.decode("latin-1") for q in queries]),
                            timeout=120, check=True)
    return dict(zip(queries, json.loads(result.stdout), strict=True))


IN_PROCESS: dict[str, Callable[[bytes], str | None]] = {
    "starlette": starlette, "werkzeug": werkzeug, "aiohttp": aiohttp}

# (query, what gatekeeper reads, why): each an attack or a spelling some parser reads otherwise.
TABLE: list[tuple[bytes, str | Reading | None, str]] = [
    (b"owner=alice", "alice", "the plain case"),
    (b"x=1&owner=alice&y=2", "alice", "among other parameters"),
    (b"&&owner=alice&", "alice", "empty pairs around it"),
    (b"owner=al%69ce", "alice", "an escape in the value is decoded"),
    (b"own%65r=alice", "alice", "an escape in the name is decoded by every parser"),
    (b"owner=a+b", "a b", "+ is a space"),
    (b"owner=a%2Bb", "a+b", "an encoded + is a plus"),
    (b"owner=caf%C3%A9", "caf\u00e9", "UTF-8 escapes"),
    (b"owner=a=b", "a=b", "the first = separates"),
    (b"owner=", "", "an empty value"),
    (b"owner", "", "a name without ="),
    (b"", None, "no query"),
    (b"owners=alice&x=owner", None, "another parameter, and the name as a value"),
    (b"owner=alice&owner=bob", AMBIGUOUS, "repeated: werkzeug and aiohttp take the first, "
                                          "Starlette and Django the last"),
    (b"owner=alice&owner=alice", AMBIGUOUS, "repeated with one value: Express reads an array"),
    (b"owner=alice&owner=", AMBIGUOUS, "repeated, once empty"),
    (b"owner=alice;owner=bob", AMBIGUOUS, "';' separates for Rack 2 and Python before 3.10"),
    (b"owner=alice;x=1", AMBIGUOUS, "the value runs on to ';' for some parsers only"),
    (b"x=1;owner=bob", AMBIGUOUS, "the name exists for ';' parsers only"),
    (b"Owner=bob", AMBIGUOUS, "ASP.NET compares names without case"),
    (b"owner=alice&OWNER=bob", AMBIGUOUS, "a second spelling of the name"),
    (b"owner[]=bob", AMBIGUOUS, "PHP reads owner[] as owner"),
    (b"owner=alice&owner[x]=bob", AMBIGUOUS, "PHP's array beside the plain name"),
    (b"+owner=bob", AMBIGUOUS, "PHP drops a leading space of a name"),
    (b"own.er=bob&own_er=x", None, "PHP's own.er is own_er, not owner"),
    (b"owner=%ff", AMBIGUOUS, "not UTF-8: U+FFFD for some, the bytes for others"),
    (b"owner=%zz", AMBIGUOUS, "a broken escape"),
    (b"owner=%e2%82", AMBIGUOUS, "a truncated UTF-8 sequence"),
    (b"owner=a%00b", AMBIGUOUS, "NUL: a C library stops there"),
    (b"owner=\xc3\xa9", AMBIGUOUS, "raw non-ASCII bytes: latin-1 for Starlette, UTF-8 for others"),
]


@pytest.mark.parametrize(("query", "expected"), [row[:2] for row in TABLE],
                         ids=[row[2] for row in TABLE])
def test_gatekeeper_reads_a_parameter_as_every_framework_does_or_not_at_all(
    query: bytes, expected: str | Reading | None
) -> None:
    assert query_parameter(query, NAME) == expected
    readings = {name: read(query) for name, read in IN_PROCESS.items()}
    readings["django"] = django_readings(tuple(row[0] for row in TABLE))[query]
    if expected is not AMBIGUOUS:
        assert set(readings.values()) == {expected}, readings


def test_where_frameworks_disagree_gatekeeper_reads_ambiguous() -> None:
    """The table holds real disagreements (else it would prove nothing about them)."""
    disagreeing = [row[0] for row in TABLE
                   if len({read(row[0]) for read in IN_PROCESS.values()}) > 1]
    assert len(disagreeing) >= 3
    assert all(query_parameter(query, NAME) is AMBIGUOUS for query in disagreeing)


PIECES = [b"owner=alice", b"owner=bob", b"Owner=bob", b"own%65r=bob", b"owner", b"owner=",
          b"owner[]=x", b"x=1", b"owner=a+b", b"owner=%ff", b"owner=%2", b"", b"o=owner",
          b"owner=a%26owner%3Db"]
GENERATED = sorted({sep.join(combo) for sep in (b"&", b";")
                    for combo in itertools.product(PIECES, repeat=2)})


def test_generated_queries_never_read_a_value_a_framework_does_not() -> None:
    """Every pair of pieces, joined by '&' or ';': whatever gatekeeper reads (a value, or
    absent), each framework reads the same; only AMBIGUOUS may differ."""
    django = django_readings(tuple(GENERATED))
    read_values = 0
    for query in GENERATED:
        ours = query_parameter(query, NAME)
        if ours is AMBIGUOUS:
            continue
        read_values += ours is not None
        theirs = {name: read(query) for name, read in IN_PROCESS.items()}
        theirs["django"] = django[query]
        assert set(theirs.values()) == {ours}, (query, ours, theirs)
    assert read_values >= 10  # not everything is refused

