"""Soak: mixed traffic through gatekeeper with two workers for a long while, and what must hold.

    .venv/bin/python bench/soak.py                      # 10 minutes (make soak)
    .venv/bin/python bench/soak.py --seconds 180        # 3 minutes
    .venv/bin/python bench/soak.py --seconds 30 --concurrency 4   # a smoke run

Traffic, mixed at random by a fixed number of client tasks (HTTP/1.1 keep-alive, httpx) and
WebSocket tasks (websockets): valid bearer tokens of a user and of an admin, forged ones (garbage,
tampered payload, expired, alg none, a foreign key), anonymous requests, public paths, paths the
policy denies, hostile spellings of denied paths, a browser session cookie (sealed with the
config's secret, as a login through the dev issuer leaves it), request bodies, and WebSocket
sessions with a token, a session or a forged token. Every request carries ``X-Soak-Id``, and the
anonymous ones a spoofed ``X-Auth-Request-User: admin``.

The upstream (tests/support/upstream.py) checks every request it serves as it arrives. At the end
the run fails (exit 1) unless:
- gatekeeper answered no 5xx and dropped no connection (the upstream never answers 5xx here);
- the upstream served no request the policy denies, and saw only the identity gatekeeper set;
- every request gatekeeper allowed reached the upstream (nothing lost);
- RSS and open file descriptors of the whole process group (the supervisor and both workers,
  sampled from /proc) stay flat after warm-up: the last third's median within 10 % + 8 MiB of
  the first third's, open files within 16.
Figures go to stdout and bench/out/soak.json; RESULTS.md records a run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.cookiejar
import itertools
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus, WebSocketException

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support
import run_gatekeeper  # the dev issuer and the sealed session cookie, as the benchmark uses them

from tests.support import forge
from tests.support.servers import free_port, run_process, serve_asgi
from tests.support.upstream import RecordedRequest, Recorder, create_upstream_app

ROOT = Path(__file__).resolve().parents[1]
POLICY = """\
p, role:anonymous, /public/*, GET|HEAD, allow
p, role:authenticated, /api/*, *, allow
p, role:authenticated, /live/*, GET, allow
p, role:admin, /admin/*, *, allow
p, role:authenticated, /api/private/*, *, deny
"""
SAMPLE_SECONDS = 2.0


@dataclass
class Expectation:
    allowed: bool
    user: str | None  # the X-Auth-Request-User the app must see (None: anonymous)


@dataclass
class Tally:
    """What the clients saw; filled by the traffic tasks (one event loop, no locks needed)."""

    sent: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    allowed_ids: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)


class CheckingRecorder(Recorder):
    """Checks each request against what the client expected, keeping counts, not requests."""

    def __init__(self) -> None:
        super().__init__()
        self.expected: dict[str, Expectation] = {}
        self.served_ids: set[str] = set()
        self.served = 0
        self.violations: list[str] = []

    def add(self, request: RecordedRequest) -> None:
        with self._lock:
            self.served += 1
            soak_id = request.header_values("x-soak-id")
            users = request.header_values("x-auth-request-user")
            expectation = self.expected.get(soak_id[0]) if len(soak_id) == 1 else None
            if expectation is None:
                self._violation(f"unknown request reached the app: {request.method} {request.path}")
                return
            self.served_ids.add(soak_id[0])
            if not expectation.allowed:
                self._violation(f"denied request reached the app: {soak_id[0]} {request.path}")
            if users != ([expectation.user] if expectation.user else []):
                self._violation(f"{soak_id[0]}: app saw user {users}, expected {expectation.user}")

    def _violation(self, text: str) -> None:
        if len(self.violations) < 50:
            self.violations.append(text)
        else:
            self.violations[-1] = f"… and more (last: {text})"


@dataclass(frozen=True)
class Kind:
    name: str
    method: str
    path: str
    credentials: str  # "user", "admin", "session", "anonymous" or a forged token's name
    allowed: bool
    body: int = 0


KINDS = [
    Kind("user-api", "GET", "/api/items/{n}", "user", True),
    Kind("user-post", "POST", "/api/upload/{n}", "user", True, body=4096),
    Kind("user-admin", "GET", "/admin/x/{n}", "user", False),
    Kind("user-private", "GET", "/api/private/{n}", "user", False),
    Kind("user-dotdot", "GET", "/api/../admin/{n}", "user", False),
    Kind("user-encoded", "GET", "/api/%2e%2e/admin/{n}", "user", False),
    Kind("user-slashes", "GET", "//admin//{n}", "user", False),
    Kind("admin-admin", "GET", "/admin/x/{n}", "admin", True),
    Kind("anon-public", "GET", "/public/p/{n}", "anonymous", True),
    Kind("anon-public-post", "POST", "/public/p/{n}", "anonymous", False, body=128),
    Kind("anon-api", "GET", "/api/items/{n}", "anonymous", False),
    Kind("anon-public-escape", "GET", "/public/..%2fadmin/{n}", "anonymous", False),
    Kind("session-api", "GET", "/api/items/{n}", "session", True),
    Kind("session-admin", "GET", "/admin/x/{n}", "session", True),  # alice's session holds admin
    Kind("session-private", "GET", "/api/private/{n}", "session", False),
    *(Kind(f"forged-{name}", "GET", "/admin/x/{n}", name, False)
      for name in ("garbage", "tampered", "expired", "none", "foreign-key")),
]
WS_KINDS = [("ws-user", "user", True), ("ws-session", "session", True), ("ws-forged", "tampered", False),
            ("ws-anonymous", "anonymous", False)]


def credentials(issuer: run_gatekeeper.DevIssuer, audience: str,
                session_cookie: str) -> dict[str, dict[str, str]]:
    def mint(sub: str, role: str, ttl: int = 6 * 3600) -> str:
        return issuer.mint(sub, audience=audience, ttl_seconds=ttl, claims={"roles": [role]})

    user, admin = mint("soak-user", "user"), mint("soak-admin", "admin")
    expired = mint("soak-user", "admin", -3600)
    header, payload, _ = forge.parts(user)
    forged = {
        "garbage": "not.a.token",
        "tampered": forge.tamper_payload(user, roles=["admin"]),
        "expired": expired,
        "none": forge.unsigned(header, {**payload, "roles": ["admin"]}),
        "foreign-key": forge.resign(admin, forge.attacker_key("RS256"), "RS256"),
    }
    bearer = {"user": user, "admin": admin, **forged}
    out = {name: {"authorization": f"Bearer {token}"} for name, token in bearer.items()}
    out["session"] = {"cookie": session_cookie.removeprefix("Cookie: ")}
    out["anonymous"] = {"x-auth-request-user": "admin"}  # a spoof gatekeeper must strip
    return out


USERS = {"user": "soak-user", "admin": "soak-admin", "session": "alice"}


async def http_worker(client: httpx.AsyncClient, creds: dict[str, dict[str, str]], recorder: CheckingRecorder,
                      tally: Tally, ids: itertools.count[int], deadline: float, rng: random.Random,
                      paths: int) -> None:
    while time.monotonic() < deadline:
        kind = rng.choice(KINDS)
        n = next(ids)
        soak_id = f"{kind.name}-{n}"
        recorder.expected[soak_id] = Expectation(kind.allowed, USERS.get(kind.credentials))
        headers = {**creds[kind.credentials], "x-soak-id": soak_id, "accept": "application/json"}
        tally.sent[kind.name] += 1
        path = kind.path.format(n=n % paths)
        try:
            response = await client.request(kind.method, path, headers=headers,
                                            content=b"x" * kind.body if kind.body else None)
        except httpx.HTTPError as exc:
            tally.errors[f"{kind.name}: {type(exc).__name__}"] += 1
            continue
        tally.statuses[f"{kind.name} {response.status_code}"] += 1
        if response.status_code >= 500:
            tally.problems.append(f"{soak_id}: {response.status_code} {response.text[:120]}")
        if kind.allowed and response.status_code == 200:
            tally.allowed_ids.add(soak_id)
        elif kind.allowed or response.status_code < 400:
            tally.problems.append(f"{soak_id}: unexpected {response.status_code}")


async def ws_worker(url: str, creds: dict[str, dict[str, str]], recorder: CheckingRecorder, tally: Tally,
                    ids: itertools.count[int], deadline: float, rng: random.Random) -> None:
    while time.monotonic() < deadline:
        name, who, allowed = rng.choice(WS_KINDS)
        soak_id = f"{name}-{next(ids)}"
        recorder.expected[soak_id] = Expectation(allowed, USERS.get(who))
        tally.sent[name] += 1
        try:
            async with ws_connect(f"{url}/live/{soak_id}", proxy=None, open_timeout=10, close_timeout=5,
                                  additional_headers={**creds[who], "x-soak-id": soak_id}) as ws:
                for index in range(rng.randint(1, 20)):
                    await ws.send(f"{soak_id}:{index}")
                    if await asyncio.wait_for(ws.recv(), 10) != f"{soak_id}:{index}":
                        tally.problems.append(f"{soak_id}: echo mismatch")
            tally.statuses[f"{name} open"] += 1
            if allowed:
                tally.allowed_ids.add(soak_id)
            else:
                tally.problems.append(f"{soak_id}: a refused WebSocket opened")
        except InvalidStatus as exc:
            status = exc.response.status_code
            tally.statuses[f"{name} {status}"] += 1
            if allowed or status >= 500:
                tally.problems.append(f"{soak_id}: handshake {status}")
        except (OSError, TimeoutError, WebSocketException) as exc:
            tally.errors[f"{name}: {type(exc).__name__}"] += 1


def group_usage(pgid: int) -> tuple[int, int, int]:
    """(RSS bytes, open file descriptors, processes) of every process in group ``pgid``."""
    rss = fds = count = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:  # field 5, pgrp, counted after "pid (comm)"
                continue
            with open(f"/proc/{entry}/status", encoding="ascii") as status:
                rss += next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) * 1024
            fds += len(os.listdir(f"/proc/{entry}/fd"))
            count += 1
    return rss, fds, count


Sample = tuple[float, int, int, int]  # seconds since start, RSS bytes, open files, processes


async def sampler(pgid: int, samples: list[Sample], deadline: float, started: float) -> None:
    while time.monotonic() < deadline:
        rss, fds, processes = group_usage(pgid)
        samples.append((time.monotonic() - started, rss, fds, processes))
        await asyncio.sleep(SAMPLE_SECONDS)


def flatness(samples: list[Sample], warmup: float) -> dict[str, float]:
    steady = [s for s in samples if s[0] >= warmup]
    third = max(1, len(steady) // 3)
    first, last = steady[:third], steady[-third:]
    return {
        "rss_first_mib": statistics.median(s[1] for s in first) / 2**20,
        "rss_last_mib": statistics.median(s[1] for s in last) / 2**20,
        "rss_max_mib": max(s[1] for s in steady) / 2**20,
        "fds_first": statistics.median(s[2] for s in first),
        "fds_last": statistics.median(s[2] for s in last),
        "fds_max": max(s[2] for s in steady),
        # least-squares slope over the whole steady part, for the record (the check uses medians)
        "rss_slope_mib_per_min": statistics.linear_regression(
            [s[0] for s in steady], [s[1] for s in steady]).slope * 60 / 2**20 if len(steady) > 1 else 0.0,
        "processes": max(s[3] for s in steady),
        "samples": len(steady),
    }


def write_config(directory: Path, issuer_url: str, upstream: str, port: int, admin_port: int) -> Path:
    (directory / "policy.csv").write_text(POLICY)
    config = {
        "listen": f"127.0.0.1:{port}", "admin_listen": f"127.0.0.1:{admin_port}", "upstream": upstream,
        "workers": 2, "access_log": False, "log_level": "warning", "public_paths": ["/public/*"],
        "auth": {"issuers": [{"issuer": issuer_url, "audience": [run_gatekeeper.AUDIENCE],
                              "algorithms": ["RS256"]}]},
        "oidc": {"issuer": issuer_url, "client_id": run_gatekeeper.CLIENT_ID, "client_secret": "bench-secret",
                 "redirect_url": f"http://127.0.0.1:{port}/oauth2/callback"},
        "session": {"secret": run_gatekeeper.SESSION_SECRET, "cookie_secure": False},
        "policy": {"model": str(ROOT / "policies" / "model.conf"), "policy": str(directory / "policy.csv"),
                   "watch": False},
    }
    path = directory / "gatekeeper.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def drive(url: str, pgid: int, creds: dict[str, dict[str, str]], recorder: CheckingRecorder,
                args: argparse.Namespace) -> tuple[Tally, list[Sample]]:
    tally, samples = Tally(), []
    started = time.monotonic()
    deadline = started + args.seconds
    ids = itertools.count()
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    # No cookie jar: a session refresh's Set-Cookie would otherwise ride on every later request,
    # the anonymous ones included (the first 3-minute run caught exactly that).
    no_cookies = http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    async with httpx.AsyncClient(base_url=url, trust_env=False, timeout=30, limits=limits,
                                 cookies=no_cookies) as client:
        tasks = [http_worker(client, creds, recorder, tally, ids, deadline, random.Random(seed),
                             args.distinct_paths) for seed in range(args.concurrency)]
        tasks += [ws_worker("ws://" + url.split("://", 1)[1], creds, recorder, tally, ids, deadline,
                            random.Random(1000 + seed)) for seed in range(args.websockets)]
        await asyncio.gather(sampler(pgid, samples, deadline, started), *tasks)
    return tally, samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=8, help="HTTP client tasks")
    parser.add_argument("--websockets", type=int, default=2, help="WebSocket client tasks")
    parser.add_argument("--distinct-paths", type=int, default=500,
                        help="path variants per kind: the decision caches fill during warm-up; "
                        "above their bound (65,536 per worker) a run shows them evicting")
    parser.add_argument("--warmup", type=float, default=None, help="default: a sixth of the run, ≥ 10 s")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "soak.json")
    args = parser.parse_args()
    warmup = args.warmup if args.warmup is not None else max(10.0, args.seconds / 6)

    issuer, issuer_server = run_gatekeeper.serve_issuer()
    creds = credentials(issuer, run_gatekeeper.AUDIENCE, run_gatekeeper.session_cookie(issuer))
    recorder = CheckingRecorder()
    port, admin_port = free_port(), free_port()
    with (tempfile.TemporaryDirectory(prefix="gk-soak-") as temp,
          serve_asgi(create_upstream_app(recorder)) as up):
        config = write_config(Path(temp), issuer.issuer, up, port, admin_port)
        with run_process([sys.executable, "-m", "gatekeeper", "run", "--config", str(config)],
                         ready_url=f"http://127.0.0.1:{admin_port}/healthz", timeout=30) as gk:
            url = f"http://127.0.0.1:{port}"
            recorder.expected["warm"] = Expectation(True, None)
            httpx.get(url + "/public/warm", trust_env=False, timeout=10, headers={"x-soak-id": "warm"})
            started = time.time()
            tally, samples = asyncio.run(drive(url, gk.pid, creds, recorder, args))
            log_tail = gk.output()[-3000:]
    issuer_server.should_exit = True

    flat = flatness(samples, warmup)
    lost = tally.allowed_ids - recorder.served_ids
    total = sum(tally.sent.values())
    failures = list(tally.problems[:30]) + recorder.violations
    if tally.errors:
        failures.append(f"client errors (dropped connections): {dict(tally.errors)}")
    if lost:
        failures.append(f"{len(lost)} allowed requests never reached the app, e.g. {sorted(lost)[:5]}")
    if flat["rss_last_mib"] > flat["rss_first_mib"] * 1.10 + 8:
        failures.append(f"RSS grew: {flat['rss_first_mib']:.1f} → {flat['rss_last_mib']:.1f} MiB")
    if flat["fds_last"] > flat["fds_first"] + 16:
        failures.append(f"open files grew: {flat['fds_first']} → {flat['fds_last']}")
    report = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": args.seconds, "warmup_seconds": warmup, "concurrency": args.concurrency,
        "websockets": args.websockets, "distinct_paths": args.distinct_paths,
        "requests": total, "per_second": round(total / args.seconds, 1),
        "served_by_app": recorder.served, "flat": flat, "sent": dict(tally.sent),
        "statuses": dict(sorted(tally.statuses.items())), "errors": dict(tally.errors),
        "failures": failures, "samples": samples,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k not in ("samples", "sent")}, indent=1))
    if failures:
        print("gatekeeper output (tail):\n" + log_tail)
        print("SOAK FAILED:\n  " + "\n  ".join(failures))
        return 1
    print(f"soak passed: {total} requests in {args.seconds} s, no 5xx, nothing denied reached the app")
    return 0


if __name__ == "__main__":
    sys.exit(main())
