"""tokens/shared.py: the workers' JWKS fetches, shared through a lock file and a record.

Each ``SharedFetches`` here stands for one worker: two instances over one directory take the
lock through two open files, as two processes would (flock locks belong to the open file).
The download is a counting stand-in; tests/e2e/test_workers.py counts real fetches at a real
issuer with real worker processes.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import time
from pathlib import Path

import pytest

from gatekeeper.clients.controlplane import FetchError
from gatekeeper.tokens.shared import JwksDocument, SharedFetches
from tests.support.fakes import run

ISSUER = "https://idp.example"


def worker(directory: Path, *, min_interval: float = 60.0, lock_seconds: float = 5.0) -> SharedFetches:
    return SharedFetches(directory, ISSUER, lock_seconds=lock_seconds, min_interval=min_interval,
                         ttl=lambda _cache_control: 300.0)


class Issuer:
    """Counts downloads; each answers a JWKS with the kids it publishes then."""

    def __init__(self, *kids: str, delay: float = 0.0, fails: bool = False) -> None:
        self.kids = list(kids)
        self.delay = delay
        self.fails = fails
        self.downloads = 0

    async def download(self) -> JwksDocument:
        self.downloads += 1
        started = time.monotonic()
        await asyncio.sleep(self.delay)
        if self.fails:
            raise FetchError("HTTP 503 from https://idp.example/jwks")
        body = json.dumps({"keys": [{"kid": kid, "kty": "RSA"} for kid in self.kids]}).encode()
        return JwksDocument(body, "max-age=300", started)


def test_workers_that_ask_while_a_fetch_is_under_way_share_it(tmp_path: Path) -> None:
    issuer = Issuer("a", delay=0.3)

    async def scenario() -> list[JwksDocument | None]:
        return list(await asyncio.gather(
            *(worker(tmp_path).fetch(issuer.download, held=None, kid=None) for _ in range(4))))

    documents = run(scenario())
    assert issuer.downloads == 1
    assert all(d is not None and d.holds("a") for d in documents)


def test_a_worker_starting_later_takes_the_fresh_document_another_fetched(tmp_path: Path) -> None:
    issuer = Issuer("a")
    first = run(worker(tmp_path).fetch(issuer.download, held=None, kid=None))
    later = run(worker(tmp_path).fetch(issuer.download, held=None, kid=None))
    assert issuer.downloads == 1
    assert later == first


def test_a_worker_holding_the_newest_document_fetches_again_when_its_refresh_is_due(
    tmp_path: Path,
) -> None:
    issuer = Issuer("a")
    held = run(worker(tmp_path).fetch(issuer.download, held=None, kid=None))
    assert held is not None
    run(worker(tmp_path).fetch(issuer.download, held=held.fetched_at, kid=None))
    assert issuer.downloads == 2


def test_a_rotation_costs_one_fetch_for_every_worker(tmp_path: Path) -> None:
    issuer = Issuer("old")
    held = run(worker(tmp_path).fetch(issuer.download, held=None, kid=None))
    assert held is not None
    issuer.kids.append("new")
    first = run(worker(tmp_path).fetch(issuer.download, held=held.fetched_at, kid="new"))
    second = run(worker(tmp_path).fetch(issuer.download, held=held.fetched_at, kid="new"))
    assert issuer.downloads == 2  # the start-up fetch, and one for the new kid
    assert first is not None and second == first and second.holds("new")


def test_made_up_kids_on_every_worker_spend_one_budget(tmp_path: Path) -> None:
    issuer = Issuer("a")
    held = run(worker(tmp_path).fetch(issuer.download, held=None, kid=None))
    assert held is not None
    workers = [worker(tmp_path) for _ in range(4)]
    answers = [run(w.fetch(issuer.download, held=held.fetched_at, kid=f"made-up-{n}"))
               for n, w in enumerate(workers)]
    assert issuer.downloads == 2  # the start-up fetch, and one for the first made-up kid
    fetched = answers[0]
    assert fetched is not None and fetched.fetched_at > held.fetched_at
    # The others take that newer document; one already holding it gets "nothing newer".
    assert answers[1:] == [fetched] * 3
    assert run(workers[0].fetch(issuer.download, held=fetched.fetched_at, kid="made-up-9")) is None
    assert issuer.downloads == 2


def test_a_worker_that_joined_a_failed_fetch_fails_without_fetching(tmp_path: Path) -> None:
    issuer = Issuer("a", delay=0.3, fails=True)

    async def scenario() -> list[JwksDocument | BaseException | None]:
        return list(await asyncio.gather(
            *(worker(tmp_path).fetch(issuer.download, held=None, kid=None) for _ in range(3)),
            return_exceptions=True))

    outcomes = run(scenario())
    assert issuer.downloads == 1
    assert [str(o) for o in outcomes] == ["HTTP 503 from https://idp.example/jwks"] * 3
    assert all(isinstance(o, FetchError) for o in outcomes)


def test_a_lock_held_too_long_fails_the_refresh_and_fetches_nothing(tmp_path: Path) -> None:
    issuer = Issuer("a")
    shared = worker(tmp_path, lock_seconds=0.2)
    run(shared.fetch(issuer.download, held=None, kid=None))  # creates the lock file
    (lock,) = tmp_path.glob("*.lock")
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a stuck worker
        with pytest.raises(FetchError, match="did not end in time"):
            run(shared.fetch(issuer.download, held=None, kid="other"))
    finally:
        os.close(fd)
    assert issuer.downloads == 1


@pytest.mark.parametrize("record", [
    b"not json", b"[]", json.dumps({"issuer": "https://someone.else", "document": None}).encode(),
    json.dumps({"issuer": ISSUER, "document": {"body": "%%%", "fetched_at": 1e18}}).encode(),
], ids=["not JSON", "not an object", "another issuer's", "a body that is not base64"])
def test_a_record_that_cannot_be_used_makes_the_worker_fetch_itself(
    tmp_path: Path, record: bytes,
) -> None:
    issuer = Issuer("a")
    shared = worker(tmp_path)
    run(shared.fetch(issuer.download, held=None, kid=None))
    (path,) = tmp_path.glob("*.json")
    path.write_bytes(record)
    document = run(worker(tmp_path).fetch(issuer.download, held=None, kid=None))
    assert issuer.downloads == 2
    assert document is not None and document.holds("a")
