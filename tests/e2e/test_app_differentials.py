"""Gatekeeper in front of real third-party frameworks: what each app *believes* stays inside the policy.

For each framework in ``tests/support/apps`` (Starlette on uvicorn, Flask on werkzeug, a WSGI app
on wsgiref and on cheroot, aiohttp, Django, and Flask with the method-override middleware of
Flask's docs), one app process and one gatekeeper process in front of it. Hundreds of hostile
request targets, methods and header spellings go through gatekeeper over raw sockets, and the
invariants are checked from the app's own record — the handler its router ran, the method and
path its framework reports, every header (and WSGI environ key) it exposes:

- no record shows a handler, method or path the policy denies the client who sent it;
- no identity, forwarding or override value the client wrote is visible to the app under any
  name: identity headers hold exactly what gatekeeper injected, X-Forwarded-For its own peer.

Policy: admins may do anything; role ``user`` may GET/HEAD/POST ``/items/:id``; everyone may
GET/HEAD ``/public/*``. So ``/admin`` and DELETE are admin-only.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.dev.issuer import DevIssuer
from tests.conftest import AUDIENCE, gatekeeper_config
from tests.e2e.test_policy_bypass import TARGETS
from tests.e2e.test_proxy import raw_request
from tests.support.app_stack import recording_app_behind_gatekeeper
from tests.support.apps import FRAMEWORKS
from tests.support.policy import write_policy
from tests.support.servers import free_port
from tests.support.spellings import FOREIGN_IDENTITY, FORWARDING, IDENTITY, OVERRIDES, spellings

REPO = Path(__file__).resolve().parents[2]
POLICY = """\
p, role:admin, /*, *, allow
p, role:user, /items/:id, GET|HEAD|POST, allow
p, role:anonymous, /public/*, GET|HEAD, allow
"""
SPOOF = "spoofed"  # in every value a client writes into a header gatekeeper must strip
# Frameworks whose own header lookup reads "X_Auth_Request_User" as "X-Auth-Request-User"
# (CGI naming: both become HTTP_X_AUTH_REQUEST_USER). werkzeug's dev server drops names with
# "_"; Starlette and aiohttp compare names case-insensitively only.
FOLDS_UNDERSCORES = {"wsgiref", "cheroot", "django", "flask-override"}


def allowed(roles: frozenset[str], method: str, path: str) -> bool:
    """The policy above, as the app's record is judged by."""
    if "admin" in roles:
        return True
    if method in ("GET", "HEAD") and path.startswith("/public/"):
        return True
    return "user" in roles and method in ("GET", "HEAD", "POST") and bool(
        re.fullmatch(r"/items/[^/]+", path))


def folded(name: str) -> str:
    """A header or environ name as the loosest app reads it: HTTP_X_FOO, x.foo, X-Foo alike."""
    if name.startswith("HTTP_"):
        name = name[5:]
    return "".join(c if c.isalnum() else "-" for c in name.lower())


@dataclass
class Client:
    name: str
    roles: frozenset[str]
    token: str | None

    @property
    def subject(self) -> str | None:
        return self.name if self.token else None

    @property
    def groups(self) -> str:  # what gatekeeper sends in X-Auth-Request-Groups
        return ",".join(sorted(self.roles - {"anonymous"}))


@dataclass
class Probe:
    client: Client
    what: str  # readable: the trick this request tries
    expect_handler: str | None = None  # a control: this handler must have run for it
    direct: bool = False  # sent to the app itself, not through gatekeeper


@dataclass
class Stack:
    framework: str
    gatekeeper_url: str
    app_url: str
    log: Path
    probes: dict[str, Probe] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, client: Client, method: str, target: bytes, headers: list[tuple[str, str]],
             what: str, *, direct: bool = False, expect_handler: str | None = None) -> int:
        """One raw request (through gatekeeper unless ``direct``); returns the status."""
        with self._lock:
            probe = f"{self.framework}-{len(self.probes)}"
            self.probes[probe] = Probe(client, what, expect_handler, direct)
        head = [("Host", "app.test"), ("X-Probe", probe), ("X-Benign", "kept")]
        if client.token:
            head.append(("Authorization", f"Bearer {client.token}"))
        if method in ("POST", "PUT", "PATCH"):
            head.append(("Content-Length", "0"))
        lines = [method.encode() + b" " + target + b" HTTP/1.1",
                 *(f"{n}: {v}".encode("latin-1") for n, v in [*head, *headers])]
        data = b"\r\n".join(lines) + b"\r\n\r\n"
        return raw_request(self.app_url if direct else self.gatekeeper_url, data).status

    def records(self) -> list[dict[str, Any]]:
        # The app writes its record before answering, and gatekeeper answers after the app did.
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []


@pytest.fixture(scope="module")
def clients(issuer: DevIssuer) -> dict[str, Client]:
    return {
        "anonymous": Client("anonymous", frozenset({"anonymous"}), None),
        "alice": Client("alice", frozenset({"user", "anonymous"}),
                        issuer.mint("alice", audience=AUDIENCE, ttl_seconds=3600,
                                    claims={"roles": ["user"], "email": "alice@example.com"})),
        "root": Client("root", frozenset({"admin", "anonymous"}),
                       issuer.mint("root", audience=AUDIENCE, ttl_seconds=3600,
                                   claims={"roles": ["admin"], "email": "root@example.com"})),
    }


@pytest.fixture(scope="module", params=list(FRAMEWORKS), ids=list(FRAMEWORKS))
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
          issuer: DevIssuer) -> Iterator[Stack]:
    """The framework's app and a gatekeeper in front of it, both real processes."""
    framework: str = request.param
    base = tmp_path_factory.mktemp(f"diff-{framework}")
    app_url = f"http://127.0.0.1:{free_port()}"
    policy = write_policy(base, (REPO / "policies" / "model.conf").read_text(), POLICY, watch=False)
    config = gatekeeper_config(issuer, app_url, public_paths=["/public/*"], policy=policy)
    with recording_app_behind_gatekeeper(framework, base, config) as log:
        yield Stack(framework, f"http://{config['listen']}", app_url, log)


# -- the hostile traffic ------------------------------------------------------------------------------

# Request targets aimed at /admin: a prefix that climbs or hides, a spelling of the segment, a
# tail; every prefix meets every spelling once, every spelling meets every tail once.
_CLIMBS = [b"/", b"//", b"/./", b"/public/../", b"/public/%2e%2e/", b"/public/.%2E/",
           b"/items/1/../../", b"/public/..;/", b"/public/..\\", b"/%2e/", b"/public/%252e%252e/"]
_SEGMENTS = [b"admin", b"ADMIN", b"Admin", b"%61dmin", b"adm%69n", b"%41DMIN", b"admin.", b"admin%2e",
             b"admin;x", b"admin%3b", b"admin%00", b"admin%20", b"admin%09", b"adm%C4%B1n"]
_TAILS = [b"", b"/", b"/x", b"%2fx", b"?next=/public/x", b"#x", b"/./x/..", b"\\x"]
ADMIN_TARGETS = list(dict.fromkeys(
    [c + s + _TAILS[i % len(_TAILS)] for c in _CLIMBS for i, s in enumerate(_SEGMENTS)]
    + [b"/" + s + t for s in _SEGMENTS for t in _TAILS]))
# Methods a user may not run on /items/1, in spellings a server or app might upper-case.
DENIED_METHODS = ["DELETE", "PUT", "PATCH", "delete", "Delete", "OPTIONS"]
METHOD_OVERRIDES = ["X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"]
# Framing and hop-by-hop names: only their foreign spellings (the real ones would frame this hop).
FOREIGN_ONLY = ["Content-Length", "Transfer-Encoding", "Keep-Alive", "Proxy-Connection",
                "Proxy-Authorization"]


@dataclass
class Request:
    client: Client
    method: str
    target: bytes
    headers: list[tuple[str, str]]
    what: str
    expect_handler: str | None = None


def hostile_traffic(clients: dict[str, Client]) -> list[Request]:
    alice, anonymous, root = clients["alice"], clients["anonymous"], clients["root"]
    # Controls: what the policy allows reaches the handler it names (the checks are not vacuous).
    out = [Request(alice, "GET", b"/items/1", [], "a user reads", "items_read"),
           Request(alice, "POST", b"/items/1", [], "a user writes", "items_write"),
           Request(anonymous, "GET", b"/public/x", [], "anyone reads public", "public"),
           Request(root, "DELETE", b"/items/1", [], "an admin deletes", "items_delete"),
           Request(root, "GET", b"/admin/x", [], "an admin administers", "admin")]
    # Targets aimed at /admin: test_policy_bypass's table and the product above.
    out += [Request(alice, "GET", target, [], what) for target, _, what in TARGETS]
    out += [Request(alice, "GET", target, [], repr(target)) for target in ADMIN_TARGETS]
    out += [Request(anonymous, "GET", target, [], f"anonymous {target!r}") for target in ADMIN_TARGETS[::7]]
    # Methods the user may not run, and every spelling of every method override on an allowed POST.
    out += [Request(alice, method, b"/items/1", [], f"a user's {method}") for method in DENIED_METHODS]
    for name in METHOD_OVERRIDES:
        for spelling in spellings(name):
            for client in (alice, anonymous):
                out.append(Request(client, "POST", b"/items/1", [(spelling, "DELETE")],
                                   f"{spelling}: DELETE"))
            out.append(Request(alice, "GET", b"/public/x", [(spelling, "DELETE")], f"GET with {spelling}"))
    for query in (b"_method=DELETE", b"_METHOD=DELETE", b"%5Fmethod=DELETE", b"x=1;_method=PUT"):
        out.append(Request(alice, "POST", b"/items/1?" + query, [], f"?{query!r}"))
    # Every spelling of every identity, forwarding and override header, all at once per name.
    for name in [*IDENTITY, *FORWARDING, *OVERRIDES, *FOREIGN_IDENTITY, *FOREIGN_ONLY]:
        sent = [(spelling, f"/admin/{SPOOF}-{i}") for i, spelling in enumerate(spellings(name))
                if name not in FOREIGN_ONLY or "-" not in spelling]
        out.append(Request(alice, "GET", b"/items/1", sent, f"spellings of {name}"))
        out.append(Request(anonymous, "GET", b"/public/x", sent, f"spellings of {name}, anonymous"))
    return out


@pytest.fixture(scope="module")
def exchanged(stack: Stack, clients: dict[str, Client]) -> Stack:
    """The hostile traffic, sent once per framework; the tests read the app's records."""
    def send(r: Request) -> int:
        return stack.send(r.client, r.method, r.target, r.headers, r.what, expect_handler=r.expect_handler)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(send, hostile_traffic(clients)))
    return stack


def _records_by_probe(stack: Stack, *, direct: bool = False) -> dict[str, dict[str, Any]]:
    """The app's records of the requests sent through gatekeeper (or, ``direct``, around it)."""
    records = stack.records()
    by_probe = {r["probe"]: r for r in records}
    assert len(by_probe) == len(records), "one request ran two handlers"
    assert set(by_probe) <= set(stack.probes), "the app saw a request the test did not send"
    return {p: r for p, r in by_probe.items() if stack.probes[p].direct == direct}


# -- the invariants, read from each app's own record ---------------------------------------------------


def test_the_allowed_requests_reach_the_handler_the_policy_names(exchanged: Stack) -> None:
    by_probe = _records_by_probe(exchanged)
    controls = {p: probe for p, probe in exchanged.probes.items() if probe.expect_handler}
    assert len(controls) == 5
    for probe_id, probe in controls.items():
        assert probe_id in by_probe, f"{probe.what}: no handler ran"
        assert by_probe[probe_id]["handler"] == probe.expect_handler, probe.what
    assert len(by_probe) > len(controls)  # public targets and allowed POSTs get through too


def test_no_request_reaches_a_handler_the_policy_denies(exchanged: Stack) -> None:
    by_probe = _records_by_probe(exchanged)
    assert len(by_probe) > 100 and len(exchanged.probes) > 500
    breaches = []
    for probe_id, record in by_probe.items():
        probe = exchanged.probes[probe_id]
        roles = probe.client.roles
        admin_only = record["handler"] in ("admin", "items_delete")
        if (admin_only and "admin" not in roles) or not allowed(roles, record["method"], record["path"]):
            breaches.append((probe.what, probe.client.name, record["handler"], record["method"],
                             record["path"]))
    assert breaches == []


def test_no_identity_forwarding_or_override_value_from_the_client_reaches_the_app(
    exchanged: Stack,
) -> None:
    by_probe = _records_by_probe(exchanged)
    leaks, wrong = [], []
    for probe_id, record in by_probe.items():
        probe = exchanged.probes[probe_id]
        pairs = [*record["headers"], *record["environ"]]
        leaks += [(probe.what, k, v) for k, v in pairs if SPOOF in v]
        seen: dict[str, set[str]] = {}
        for key, value in pairs:
            seen.setdefault(folded(key), set()).add(value)
        expected = {
            "x-auth-request-user": {probe.client.subject} if probe.client.subject else set(),
            "x-auth-request-email": {f"{probe.client.subject}@example.com"} if probe.client.subject
            else set(),
            "x-auth-request-groups": {probe.client.groups} if probe.client.subject else set(),
            "x-forwarded-for": {"127.0.0.1"},
            "x-forwarded-proto": {"http"},
            "x-forwarded-host": {"app.test"},
        }
        for name, values in expected.items():
            if seen.get(name, set()) != values:
                wrong.append((probe.what, name, seen.get(name)))
        if seen.get("x-benign") != {"kept"}:
            wrong.append((probe.what, "x-benign", seen.get("x-benign")))  # the record is complete
    assert leaks == []
    assert wrong == []


def test_the_framework_reads_a_foreign_spelling_as_the_header_it_stands_for(stack: Stack) -> None:
    """Without gatekeeper in front, the class is real: pin what each framework does with
    ``X_Auth_Request_User`` and (the override middleware) ``X_HTTP_Method_Override``."""
    nobody = Client("nobody", frozenset(), None)
    stack.send(nobody, "POST", b"/items/1", [("X_Auth_Request_User", "mallory"),
                                              ("X_HTTP_Method_Override", "DELETE")],
               "direct", direct=True)
    probe = next(p for p, probe in stack.probes.items() if probe.what == "direct")
    record = _records_by_probe(stack, direct=True)[probe]
    if record["environ"]:  # WSGI: the environ key the framework's lookup reads
        reads = [v for k, v in record["environ"] if k == "HTTP_X_AUTH_REQUEST_USER"]
    else:  # ASGI, aiohttp: a case-insensitive lookup
        reads = [v for k, v in record["headers"] if k.lower() == "x-auth-request-user"]
    assert (reads == ["mallory"]) == (stack.framework in FOLDS_UNDERSCORES), reads
    overridden = record["handler"] == "items_delete"
    assert overridden == (stack.framework == "flask-override"), record["handler"]
