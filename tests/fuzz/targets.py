"""One coverage-guided fuzz target per component: bytes from libFuzzer → the component's input →
the shared invariant check (invariants.py). Run through ``python -m tests.fuzz.run``.

Each target is a plain function of ``bytes`` so it runs without atheris too (the seed corpus is
replayed through them in test_properties.py). Structured inputs are cut from the bytes in ways
that survive byte-level mutation: text stays text, a header list is one header per line.
"""

from __future__ import annotations

import contextlib
import functools
import tempfile
from collections.abc import Callable
from pathlib import Path

from gatekeeper.errors import SessionInvalid
from tests.fuzz import invariants, subjects

SEEDS = Path(__file__).resolve().parent / "seeds"
CORPUS = Path(__file__).resolve().parent / "corpus"


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def fuzz_paths(data: bytes) -> None:
    invariants.check_canonical_path(data)


def fuzz_redirects(data: bytes) -> None:
    value = _text(data)
    invariants.check_safe_redirect(value)
    invariants.check_safe_redirect(value, allow_http=True)


@functools.cache
def bearer_subject() -> subjects.BearerSubject:
    return subjects.BearerSubject.build()


def fuzz_bearer(data: bytes) -> None:
    """The bytes are an Authorization header value, and also a whole Cookie header (``tok=…``)."""
    subject = bearer_subject()
    invariants.check_bearer(subject, [(b"authorization", data)])
    invariants.check_bearer(subject, [(b"cookie", data)])


@functools.cache
def cookie_subject() -> subjects.CookieSubject:
    """The store, knowing every session sealed for the seeds. A working corpus may still hold
    sessions sealed for older seeds (--write-seeds seals anew): those that open are ours too.
    Nothing else can be in it: an input that opened as an unknown session crashed the run and
    went to artifacts/, never into the corpus."""
    subject = subjects.CookieSubject.build()
    for seed in sorted((SEEDS / "cookie").glob("sealed-*")):
        subject.register_cookie_header(seed.read_bytes())
    for kept in sorted((CORPUS / "cookie").glob("*")) if (CORPUS / "cookie").is_dir() else []:
        with contextlib.suppress(SessionInvalid, KeyError, ValueError):
            subject.register_cookie_header(kept.read_bytes())
    return subject


def fuzz_cookie(data: bytes) -> None:
    invariants.check_session_cookie(cookie_subject(), data)


def fuzz_forward_auth(data: bytes) -> None:
    """Line 1: ``trusted`` or not, the proxy kind, the check request's own target and method
    (Envoy's source);
    then one ``name: value`` header per line."""
    first, _, rest = data.partition(b"\n")
    words = first.split(b" ")
    word = words[1].decode("latin-1") if len(words) > 1 else "nginx"
    # a proxy's name, or any other word: its length picks one (so mutations reach them all)
    proxy = word if word in invariants.PROXIES else invariants.PROXIES[len(word) % len(invariants.PROXIES)]
    target = words[2] if len(words) > 2 else b"/oauth2/auth"
    method = words[3].decode("latin-1") if len(words) > 3 else "GET"
    headers = []
    for line in rest.split(b"\n"):
        name, sep, value = line.partition(b":")
        if sep:
            headers.append((name.strip().lower(), value.strip(b" \t")))
    invariants.check_forward_auth(proxy, headers, trusted=words[0] == b"trusted", target=target,
                                  method=method)


@functools.cache
def _config_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="gk-fuzz-config-"))


def fuzz_config(data: bytes) -> None:
    """A YAML file; its comment lines ``#env NAME=VALUE`` are the process environment."""
    environ = {}
    for line in data.split(b"\n"):
        if line.startswith(b"#env ") and b"=" in line:
            name, _, value = _text(line[5:]).partition("=")
            environ[name] = value
    path = _config_dir() / "gatekeeper.yaml"
    path.write_bytes(data)
    invariants.check_config(path, environ)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "paths": fuzz_paths,
    "redirects": fuzz_redirects,
    "bearer": fuzz_bearer,
    "cookie": fuzz_cookie,
    "forward_auth": fuzz_forward_auth,
    "config": fuzz_config,
}


def seed_files(target: str) -> list[Path]:
    return sorted(p for p in (SEEDS / target).glob("*") if p.is_file()) if (SEEDS / target).is_dir() else []

