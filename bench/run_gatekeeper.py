"""Gatekeeper end to end under wrk, against the tiny nginx upstream of harness.py.

Scenarios (each with -c32 and -c4, interleaved rounds, medians):
  (a) nginx-direct         wrk → nginx
  (b) gk-token-{1,2}w      wrk → gatekeeper (valid RS256 bearer token, the full check) → nginx
  (c) gk-public-{1,2}w     wrk → gatekeeper (public path, anonymous) → nginx
  (d) gk-session-{1,2}w    wrk → gatekeeper (browser session cookie: open, check, claims) → nginx
  with --redis (a redis-server on a unix socket):
  (e) gk-redis-session-{1,2}w     the session in Redis, the cookie a ticket (cache on, kept true
                                  by pub/sub invalidations; @baseline with --baseline);
      gk-redis-session-uncached-*  the same with session.redis_cache_seconds 0 (a GET per request)
  (f) gk-token-revocation-{1,2}w  (b) with the revocation list on (a local lookup per request)
  with --http-protocols gatekeeper,uvicorn:
  (g) gk-token-{1,2}w-http=NAME   (b) with server.http NAME, each protocol in the same run
  with --peers (needs apache2 and libapache2-mod-auth-openidc):
  (g) gk-token-rbac-{1,2}w  (b) plus a Casbin policy that lets only role:admin through: the
      full job the peer does below
      apache-openidc        wrk → Apache + mod_auth_openidc (signature against the JWKS, exp,
      iss, aud, roles:admin, identity headers, access log) → nginx (bench/peers/apache.py)
  Before loading, every token scenario must refuse what it should (no token, a tampered
  signature, an unknown key, an expired token, another audience, another issuer: 401 — for
  Apache a failed `Require claim` on iss/aud is its 403 — and, with a role rule, a token
  without the role: 403) and pass the caller's identity, not a client-sent one.

A dev issuer (gatekeeper.dev.issuer, with its login side) serves discovery and JWKS from this
process; gatekeeper fetches the keys once at start, so the issuer is idle during the measured
runs. The session cookie is sealed here with the config's session secret, as a login through the
dev issuer would leave it (ID token, JWT access token, refresh token, claims): a login is not on
the hot path, a session request is.

    .venv/bin/python bench/run_gatekeeper.py                 # ~7 min, writes bench/out/gatekeeper.*
    .venv/bin/python bench/run_gatekeeper.py --rounds 1 --duration 3 --warmup 1   # smoke
    .venv/bin/python bench/run_gatekeeper.py --workers 1 --connections 32 \
        --http-protocols gatekeeper,uvicorn     # the two HTTP/1.1 protocols side by side
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import uvicorn
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_policy
import harness
from peers import apache

from gatekeeper.clients.redis import connect
from gatekeeper.cookies import CookieJar
from gatekeeper.dev.issuer import DevIssuer
from gatekeeper.dev.issuer_http import create_issuer_app
from gatekeeper.dev.login import DevClient, DevLogin
from gatekeeper.request import RequestView
from gatekeeper.sessions.cookie import CookieSessionStore
from gatekeeper.sessions.model import Session
from gatekeeper.sessions.redis import RedisSessionStore
from gatekeeper.settings import RedisSettings, SessionSettings, Settings

AUDIENCE = "bench-api"
CLIENT_ID = "bench-web"
SESSION_SECRET = "bench-session-secret-0123456789abcdefghij"
ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve(app: object, port: int, **tls: str) -> uvicorn.Server:
    """``app`` under uvicorn on 127.0.0.1:``port`` in a thread of this process (``tls``:
    uvicorn's ssl_certfile/ssl_keyfile)."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port,  # type: ignore[arg-type]
                            log_level="warning", access_log=False, **tls)  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    threading.Thread(target=server.run, daemon=True).start()
    for _ in range(200):  # 10 s
        if server.started:
            return server
        time.sleep(0.05)
    raise RuntimeError(f"nothing listened on 127.0.0.1:{port} within 10 s")


def serve_issuer() -> tuple[DevIssuer, uvicorn.Server]:
    port = _free_port()
    issuer = DevIssuer(f"http://127.0.0.1:{port}", algorithms=("RS256",), jwks_max_age_seconds=3600)
    login = DevLogin(issuer, clients=[DevClient(CLIENT_ID, "bench-secret", [])])
    return issuer, serve(create_issuer_app(issuer, login=login), port)


def token_checks(issuer: DevIssuer, bearer: str, claim_refusal: int = 401,
                 role_rule: bool = False) -> tuple[harness.Check, ...]:
    """What a bearer-token scenario must refuse and pass before it is measured: proof that it
    does the job (signature, exp, iss, aud, role) rather than merely proxying.

    ``claim_refusal``: the status for a well-signed token of another audience or issuer (Apache
    checks those with ``Require claim``, whose refusal is a 403)."""
    def token(subject: str = "alice", audience: str = AUDIENCE, roles: tuple[str, ...] = ("admin",),
              iss: str | None = None, now: float | None = None) -> str:
        claims: dict[str, object] = {"email": f"{subject}@example.com", "roles": list(roles)}
        if iss is not None:
            claims["iss"] = iss
        return "Authorization: Bearer " + issuer.mint(subject, audience=audience, ttl_seconds=600,
                                                      claims=claims, now=now)

    head, _, signature = bearer.rpartition(".")
    tampered = head + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    stranger = DevIssuer(issuer.issuer, algorithms=("RS256",))  # same iss, another key
    unknown_key = "Authorization: Bearer " + stranger.mint(
        "alice", audience=AUDIENCE, claims={"roles": ["admin"]})
    checks = [
        harness.Check("the caller's identity passed", "/echo-identity", (bearer,), 200,
                      body_has="alice"),
        harness.Check("a client-sent identity replaced", "/echo-identity",
                      (bearer, "X-Auth-Request-User: mallory"), 200, body_lacks="mallory"),
        harness.Check("no token", "/", (), 401),
        harness.Check("a tampered signature", "/", (tampered,), 401),
        harness.Check("a token signed by an unknown key", "/", (unknown_key,), 401),
        harness.Check("an expired token", "/",
                      (token(now=time.time() - 7200),), 401),
        harness.Check("a token for another audience", "/", (token(audience="other-api"),),
                      claim_refusal),
        harness.Check("a token of another issuer", "/",
                      (token(iss="https://elsewhere.example"),), claim_refusal),
    ]
    if role_rule:
        checks.append(harness.Check("a token without the role", "/",
                                    (token("bob", roles=("user",)),), 403))
    return tuple(checks)


RANDOM_PATHS_LUA = """
-- Every request a new path under role0's rules, so the decision cache cannot answer.
request = function()
  return wrk.format(nil, "/r0/p" .. math.random(0, 8) .. "/" .. math.random(1, 100000000) .. "/items")
end
"""


def session_cookie(issuer: DevIssuer, redis_url: str | None = None) -> str:
    """A ``Cookie:`` header holding the session a login at the dev issuer leaves behind: the
    sealed session (cookie store), or its ticket with the session stored in Redis."""
    claims = {"email": "alice@example.com", "name": "Alice", "roles": ["admin", "user"],
              "sid": "0123456789abcdef"}
    id_token = issuer.mint("alice", audience=CLIENT_ID, ttl_seconds=6 * 3600, claims=claims)
    session = Session.new(
        subject="alice", provider="default",
        claims={"iss": issuer.issuer, "sub": "alice", "aud": CLIENT_ID, **claims},
        access_token=issuer.mint("alice", audience=CLIENT_ID, ttl_seconds=6 * 3600, claims=claims),
        refresh_token="r" * 43, access_expires_at=int(time.time()) + 6 * 3600, now=time.time(),
        id_token=id_token)
    config = SessionSettings(secret=[SESSION_SECRET], cookie_secure=False)
    jar = CookieJar()

    async def save() -> None:
        request = RequestView({"headers": [], "path": "/"}, "/")
        if redis_url is None:
            await CookieSessionStore(config).save(request, jar, session)
            return
        redis_settings = RedisSettings(url=redis_url)
        client = connect(Settings(session=config, redis=redis_settings).redis_connection())
        try:
            await RedisSessionStore(client, config, redis_settings).save(request, jar, session)
        finally:
            await client.aclose()

    asyncio.run(save())
    return "Cookie: " + "; ".join(f"{c.name}={c.value}" for c in jar)


@contextlib.contextmanager
def run_redis_server(directory: Path) -> Iterator[str]:
    """redis-server on a unix socket in ``directory``; yields its URL."""
    socket_path = directory / "redis.sock"
    proc = subprocess.Popen(
        ["redis-server", "--port", "0", "--unixsocket", str(socket_path), "--save", "",
         "--appendonly", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not socket_path.exists():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield f"unix://{socket_path}"
    finally:
        proc.terminate()
        proc.wait(10)


def write_config(
    directory: Path, issuer: DevIssuer, workers: int, policy: Path | None = None,
    redis_url: str | None = None, revocation: bool = False,
) -> Path:
    config = {
        # listen, admin_listen and upstream are set per run through GATEKEEPER_* variables (see main).
        "listen": "127.0.0.1:4180",
        "admin_listen": "127.0.0.1:9901",
        "upstream": "http://127.0.0.1:8080",
        "public_paths": ["/public/*"],
        "workers": workers,
        "access_log": True,
        "log_level": "warning",
        "auth": {"issuers": [{"issuer": issuer.issuer, "audience": [AUDIENCE],
                              "algorithms": ["RS256"]}]},
        "oidc": {"issuer": issuer.issuer, "client_id": CLIENT_ID, "client_secret": "bench-secret",
                 "redirect_url": "http://127.0.0.1:4180/oauth2/callback"},
        "session": {"secret": SESSION_SECRET, "cookie_secure": False},
    }
    if redis_url is not None and not revocation:
        config["session"] = {**config["session"], "store": "redis", "redis_url": redis_url}
    if redis_url is not None and revocation:
        config["redis"] = {"url": redis_url}
        config["revocation"] = {"enabled": True, "admin_secret": SESSION_SECRET}
    if policy is not None:
        config["policy"] = {"model": str(ROOT / "policies" / "model.conf"), "policy": str(policy),
                            "watch": False}
    name = (f"gatekeeper-{workers}w" + (f"-{policy.stem}" if policy else "")
            + ("-redis" if redis_url else "") + ("-revocation" if revocation else ""))
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def peer_ratios(summaries: list[harness.Summary], peer: str = "apache-openidc") -> str:
    """A markdown table: each gatekeeper scenario's CPU µs/req over the peer's at the same -c,
    and its p99 (the issue's targets: token ≤ 0.55 of it and ≤ 200 µs; p99 ≤ 10 ms at c32)."""
    by_conns = {s.connections: s for s in summaries if s.scenario == peer}
    lines = [f"| scenario | conns | CPU µs/req | ratio to {peer} | p99 ms |", "|---|---:|---:|---:|---:|"]
    for s in summaries:
        if s.scenario.startswith("gk-") and s.connections in by_conns:
            ratio = s.server_cpu_us_per_req / by_conns[s.connections].server_cpu_us_per_req
            lines.append(f"| {s.scenario} | {s.connections} | {s.server_cpu_us_per_req:,.0f} "
                         f"| {ratio:.2f} | {s.p99_ms:.2f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", default="32,4")
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--policy-sizes", default="",
                        help="also gatekeeper with generated policies of these sizes, e.g. 100,100000")
    parser.add_argument("--redis", action="store_true",
                        help="also sessions in Redis (needs redis-server): gk-redis-session-*")
    parser.add_argument("--http-protocols", default="",
                        help="also the token scenario with each of these server.http protocols, "
                        "e.g. gatekeeper,uvicorn: gk-token-*-http=NAME")
    parser.add_argument("--peers", action="store_true",
                        help="also gk-token-rbac-* and Apache + mod_auth_openidc doing the same "
                        "job (apache-openidc; needs apache2, libapache2-mod-auth-openidc)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "gatekeeper")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="a checkout of an earlier commit (git worktree add DIR REV): its "
                        "gatekeeper runs the same token/public/session scenarios in the same run, "
                        "named *@baseline, so a change is compared side by side")
    args = parser.parse_args()

    issuer, issuer_server = serve_issuer()
    token = issuer.mint("alice", audience=AUDIENCE, ttl_seconds=6 * 3600,
                        claims={"email": "alice@example.com", "roles": ["admin", "user"]})
    bearer = f"Authorization: Bearer {token}"
    cookie = session_cookie(issuer)
    directory = Path(tempfile.mkdtemp(prefix="gk-bench-"))
    (directory / "logs").mkdir()
    stack = contextlib.ExitStack()
    redis_server = stack.enter_context(run_redis_server(directory)) if args.redis else None
    redis_cookie = session_cookie(issuer, redis_server) if redis_server else None
    scenarios = [harness.Scenario("nginx-direct", "@upstream", headers=())]
    checks = token_checks(issuer, bearer)
    if args.peers:  # mod_auth_openidc takes only an https JWKS URI: the same keys over TLS
        cert, key = apache.self_signed_certificate(directory)
        jwks_port = _free_port()
        stack.callback(setattr, serve(create_issuer_app(issuer), jwks_port, ssl_certfile=str(cert),
                                      ssl_keyfile=str(key)), "should_exit", True)
        scenarios.append(harness.Scenario(
            "apache-openidc",
            apache.command(Path(tempfile.mkdtemp(prefix="bench-apache-")), issuer.issuer,
                           f"https://127.0.0.1:{jwks_port}/jwks", AUDIENCE, "admin"),
            path="/", headers=(bearer,),
            checks=token_checks(issuer, bearer, claim_refusal=403, role_rule=True)))
    for workers in (int(w) for w in args.workers.split(",")):
        config = write_config(directory, issuer, workers)
        # The harness fills {port} and {upstream_port} in these environment values.
        command = "{python} -P -m gatekeeper run --config " + str(config)
        for kind, path, headers in (("token", "/", (bearer,)), ("public", "/public/x", ()),
                                    ("session", "/", (cookie,))):
            env = {"GATEKEEPER_LISTEN": "127.0.0.1:{port}",
                   "GATEKEEPER_ADMIN_LISTEN": f"127.0.0.1:{_free_port()}",
                   "GATEKEEPER_UPSTREAM": "http://127.0.0.1:{upstream_port}"}
            scenarios.append(harness.Scenario(f"gk-{kind}-{workers}w", command, env, path=path,
                                              headers=headers,
                                              checks=checks if kind == "token" else ()))
            # PYTHONPATH wins over the venv's editable install, and -P keeps `-m` from putting
            # the working directory (this checkout) before it on sys.path.
            if args.baseline is not None:
                env = {**env, "GATEKEEPER_ADMIN_LISTEN": f"127.0.0.1:{_free_port()}",
                       "PYTHONPATH": str(args.baseline.resolve())}
                scenarios.append(harness.Scenario(f"gk-{kind}-{workers}w@baseline", command, env,
                                                  path=path, headers=headers))
            for protocol in filter(None, args.http_protocols.split(",") if kind == "token" else []):
                own = {k: v for k, v in env.items() if k != "PYTHONPATH"}  # this checkout's
                own |= {"GATEKEEPER_ADMIN_LISTEN": f"127.0.0.1:{_free_port()}",
                        "GATEKEEPER_SERVER__HTTP": protocol}
                scenarios.append(harness.Scenario(f"gk-{kind}-{workers}w-http={protocol}", command,
                                                  own, path=path, headers=headers))
        if args.peers:  # the full job: (b) plus a role rule, as Apache's Require claim roles:admin
            policy = directory / "admin-only.csv"
            policy.write_text("p, role:admin, /*, *, allow\n")
            env = {"GATEKEEPER_LISTEN": "127.0.0.1:{port}",
                   "GATEKEEPER_ADMIN_LISTEN": f"127.0.0.1:{_free_port()}",
                   "GATEKEEPER_UPSTREAM": "http://127.0.0.1:{upstream_port}"}
            scenarios.append(harness.Scenario(
                f"gk-token-rbac-{workers}w", "{python} -P -m gatekeeper run --config "
                + str(write_config(directory, issuer, workers, policy)), env, path="/",
                headers=(bearer,), checks=token_checks(issuer, bearer, role_rule=True)))
        if redis_server is not None and redis_cookie is not None:
            redis_config = write_config(directory, issuer, workers, redis_url=redis_server)
            env = {"GATEKEEPER_LISTEN": "127.0.0.1:{port}",
                   "GATEKEEPER_ADMIN_LISTEN": f"127.0.0.1:{_free_port()}",
                   "GATEKEEPER_UPSTREAM": "http://127.0.0.1:{upstream_port}"}
            scenarios.append(harness.Scenario(
                f"gk-redis-session-{workers}w", "{python} -P -m gatekeeper run --config "
                + str(redis_config), env, path="/", headers=(redis_cookie,)))
            if args.baseline is not None:
                scenarios.append(harness.Scenario(
                    f"gk-redis-session-{workers}w@baseline", "{python} -P -m gatekeeper run --config "
                    + str(redis_config),
                    {**env, "GATEKEEPER_ADMIN_LISTEN": f"127.0.0.1:{_free_port()}",
                     "PYTHONPATH": str(args.baseline.resolve())}, path="/", headers=(redis_cookie,)))
            # The same with the read cache off: one Redis GET per request.
            env = {**env, "GATEKEEPER_ADMIN_LISTEN": f"127.0.0.1:{_free_port()}",
                   "GATEKEEPER_SESSION__REDIS_CACHE_SECONDS": "0"}
            scenarios.append(harness.Scenario(
                f"gk-redis-session-uncached-{workers}w", "{python} -P -m gatekeeper run --config "
                + str(redis_config), env, path="/", headers=(redis_cookie,)))
            env = {k: v for k, v in env.items() if k != "GATEKEEPER_SESSION__REDIS_CACHE_SECONDS"}
            # The same bearer request with the revocation list on: the check is a local lookup.
            revocation_config = write_config(directory, issuer, workers, redis_url=redis_server,
                                             revocation=True)
            env = {**env, "GATEKEEPER_ADMIN_LISTEN": f"127.0.0.1:{_free_port()}"}
            scenarios.append(harness.Scenario(
                f"gk-token-revocation-{workers}w", "{python} -P -m gatekeeper run --config "
                + str(revocation_config), env, path="/", headers=(bearer,)))
    if args.policy_sizes:
        role_token = issuer.mint("bob", audience=AUDIENCE, ttl_seconds=6 * 3600,
                                 claims={"roles": ["role0"]})
        script = directory / "random_paths.lua"
        script.write_text(RANDOM_PATHS_LUA)
        for size in (int(n) for n in args.policy_sizes.split(",")):
            policy = bench_policy.write_policy(directory, size)
            with policy.open("a") as lines:  # lets the harness's pre-flight checks through
                lines.write("p, role:admin, /*, *, allow\n")
            config = write_config(directory, issuer, 1, policy)
            command = "{python} -P -m gatekeeper run --config " + str(config)
            for kind, lua in (("cached", None), ("uncached", str(script))):
                env = {"GATEKEEPER_LISTEN": "127.0.0.1:{port}",
                       "GATEKEEPER_ADMIN_LISTEN": f"127.0.0.1:{_free_port()}",
                       "GATEKEEPER_UPSTREAM": "http://127.0.0.1:{upstream_port}"}
                scenarios.append(harness.Scenario(
                    f"gk-policy{size}-{kind}", command, env, path="/r0/p0/1/items",
                    headers=(f"Authorization: Bearer {role_token}",), script=lua))
    connections = [int(c) for c in args.connections.split(",")]
    started, load_before = time.time(), os.getloadavg()
    runs, problems = harness.run_benchmark(
        scenarios, connections, args.duration, args.warmup, args.rounds,
        check_headers=(bearer,), log_dir=directory / "logs",
    )
    finished = time.time()
    summaries = harness.summarize(runs)
    table = harness.markdown_table(summaries)
    if args.peers:
        table += "\n\n" + peer_ratios(summaries)
    overlapped = sum(s.overlapped_runs for s in summaries)
    if overlapped:
        table += (f"\n\nNOTE: {overlapped} measured runs had another benchmark's wrk running "
                  "beside them: do not trust these figures.")
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(table + "\n")
    args.out.with_suffix(".json").write_text(json.dumps({
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(finished)),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "settings": {"connections": connections, "duration_s": args.duration,
                     "warmup_s": args.warmup, "rounds": args.rounds},
        "versions": apache.versions() if args.peers else {},
        "problems": problems,
        "medians": [harness.asdict(s) for s in summaries],
        "runs": [harness.asdict(r) for r in runs],
    }, indent=2) + "\n")
    issuer_server.should_exit = True
    stack.close()
    for name, issues in problems.items():
        for issue in issues:
            print(f"PROBLEM {name}: {issue}")
    return 1 if any(problems.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
