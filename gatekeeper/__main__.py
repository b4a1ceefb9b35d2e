"""Command line: gatekeeper run | check | policy test|check|explain|diff | demo.

Config is validated before the server machinery is imported, so a bad file is refused at once.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from gatekeeper.errors import ConfigError
from gatekeeper.settings import Settings, split_host_port
from gatekeeper.settings.file import load_settings

if TYPE_CHECKING:  # the CLI imports the policy modules only when a command needs them
    from gatekeeper.cli.check import CheckResult
    from gatekeeper.policy.loader import LoadReport


def _config_path(args: argparse.Namespace) -> str | None:
    path: str | None = args.config or os.environ.get("GATEKEEPER_CONFIG")
    return path


def _report(problems: Sequence[str]) -> None:
    print(f"gatekeeper: invalid configuration ({len(problems)} problem"
          f"{'s' if len(problems) != 1 else ''}):", file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)


def _load_or_report(args: argparse.Namespace) -> Settings | None:
    """The settings, after printing a warning for each one only safe on localhost (check and
    run alike); None after reporting the problems."""
    from gatekeeper.settings.localhost import localhost_only_warnings

    try:
        settings = load_settings(_config_path(args))
        if settings.assertion is not None:
            # What the key files hold: refused here, one line per key, as a config problem.
            from gatekeeper.assertion.keys import load_keyring
            load_keyring(settings.assertion)
        from gatekeeper.clients.client_auth import client_key_problems
        if problems := client_key_problems(settings):  # the private_key_jwt keys: the same way
            raise ConfigError(problems)
    except ConfigError as exc:
        _report(exc.problems)
        return None
    from gatekeeper.app import tracing_problems

    if tracing_problems(settings):
        _report(tracing_problems(settings))
        return None
    for warning in localhost_only_warnings(settings):
        print(f"warning: {warning}", file=sys.stderr)
    return settings


def _check_policy_or_report(settings: Settings) -> CheckResult | None:
    """The policy, loaded and linted; None after reporting its problems (the same lines for
    check and run)."""
    from gatekeeper.cli.check import CheckResult, check_policy_files

    if settings.policy is None:
        return CheckResult([], [], "")
    result = check_policy_files(settings.policy)
    if result.problems:
        _report(result.problems)
        return None
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return result


def cmd_check(args: argparse.Namespace) -> int:
    from gatekeeper.settings.file import override_variables

    path = _config_path(args)
    variables = override_variables(os.environ)
    if path is None and not variables:
        # Nothing of the user's to check: "ok" here would pass a CI step that checks nothing.
        print("gatekeeper: no config file given: pass --config FILE or set GATEKEEPER_CONFIG "
              "(no GATEKEEPER_* variables are set either: there is nothing to check but the "
              "built-in defaults)", file=sys.stderr)
        return 2
    settings = _load_or_report(args)
    if settings is None:
        return 2
    policy = _check_policy_or_report(settings)
    if policy is None:
        return 2
    summary = f", policy {policy.summary}" if policy.summary else ""
    what = (path if path is not None else
            f"no config file given: the built-in defaults with {', '.join(variables)}")
    print(f"ok: {what} {'is' if path is not None else 'are'} valid "
          f"({len(settings.auth.issuers)} issuer(s), upstream {settings.upstream}{summary})")
    return 0


def cmd_policy_test(args: argparse.Namespace) -> int:
    from gatekeeper.cli.policy import policy_test

    return policy_test(_config_path(args), sub=args.sub, iss=args.iss, roles=args.role, claims=args.claim,
                       anonymous=args.anonymous, method=args.method, path=args.path,
                       cases=args.cases, host=args.host, client=args.client)


def cmd_policy_check(args: argparse.Namespace) -> int:
    from gatekeeper.cli.check import policy_check

    return policy_check(_config_path(args))


def cmd_policy_explain(args: argparse.Namespace) -> int:
    from gatekeeper.cli.explain import policy_explain

    return policy_explain(_config_path(args), sub=args.sub, iss=args.iss, roles=args.role,
                          claims=args.claim, anonymous=args.anonymous, method=args.method,
                          path=args.path, as_json=args.json, host=args.host,
                          client=args.client)


def cmd_policy_diff(args: argparse.Namespace) -> int:
    from gatekeeper.cli.diff import policy_diff

    return policy_diff(_config_path(args), args.old, args.new, cases=args.cases,
                       traffic=args.traffic, traffic_lines=args.traffic_lines,
                       generate=args.generate, max_requests=args.max_requests,
                       allow_change=args.allow_change, as_json=args.json)


def cmd_run(args: argparse.Namespace) -> int:
    settings = _load_or_report(args)
    policy = None if settings is None else _check_policy_or_report(settings)
    if settings is None or policy is None:
        return 2
    serve(settings, policy.loaded)
    return 0


def serve(settings: Settings, policy: LoadReport | None = None) -> None:
    """``policy``: already loaded by the pre-flight check, so a single process serves it as is
    (each of several workers loads its own)."""
    import uvicorn

    from gatekeeper import logs
    from gatekeeper.app import (
        bind_public_listener,
        connection_limits,
        create_app,
        create_worker_app,
    )
    from gatekeeper.server.choice import http_protocol
    from gatekeeper.server.supervisor import DrainingServer, Supervisor
    from gatekeeper.server.websocket import EdgeWebSocketProtocol
    from gatekeeper.tls.rotation import listener_context

    logs.configure(settings.log_level)
    sock = bind_public_listener(settings)
    if sock is None:
        sys.exit(3)
    host, port = split_host_port(settings.listen)
    app: Any = create_app(settings, policy=policy)
    metrics_dir: str | None = None
    jwks_dir: str | None = None
    if settings.workers > 1:
        # Each worker process gets these settings, validated once here (create_worker_app);
        # their metrics are summed through prometheus-client's multiprocess directory, ours to
        # remove at exit (a pod's /tmp emptyDir outlives container restarts).
        if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
            metrics_dir = tempfile.mkdtemp(prefix="gatekeeper-metrics-")
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        # One JWKS fetch per issuer serves every worker (tokens/shared.py); 0700, ours alone.
        jwks_dir = tempfile.mkdtemp(prefix="gatekeeper-jwks-")
        app = functools.partial(create_worker_app, settings, jwks_dir)
    config = uvicorn.Config(
        app,
        factory=settings.workers > 1,
        workers=settings.workers,
        host=host,
        port=port,
        loop="uvloop",
        http=http_protocol(settings.server.http, connection_limits(settings)),
        ws=EdgeWebSocketProtocol,
        # Bounds a client's message, after permessage-deflate: 1009 beyond (RFC 6455 §7.4.1).
        ws_max_size=settings.websocket_max_message_bytes,
        lifespan="on",
        access_log=False,
        log_config=None,
        proxy_headers=False,  # X-Forwarded-* trust is gatekeeper's decision (trusted_proxies)
        server_header=False,
        timeout_graceful_shutdown=math.ceil(settings.drain_seconds),
        timeout_keep_alive=math.ceil(settings.keep_alive_timeout_seconds),
        # Our own context (tls/): TLS 1.2+, the ciphers, ALPN, client certificates, rotation.
        ssl_context_factory=None if settings.tls is None else functools.partial(
            listener_context, settings.tls, settings.tls.verifies_clients,
            log_level=settings.log_level),
    )
    if settings.workers > 1:
        try:
            Supervisor(config, sockets=[sock]).run()
        finally:
            for directory in (metrics_dir, jwks_dir):
                if directory is not None:
                    shutil.rmtree(directory, ignore_errors=True)
        return
    server = DrainingServer(config)
    server.run(sockets=[sock])
    if not server.started:
        sys.exit(3)


def cmd_demo(args: argparse.Namespace) -> int:
    from gatekeeper.dev.demo import run_demo

    return run_demo(port=int(args.port), admin_port=int(args.admin_port),
                    exit_after_check=bool(args.check))


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gatekeeper")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gatekeeper", description=__doc__)
    parser.add_argument("--version", action="version", version=f"gatekeeper {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, text in (
        ("run", cmd_run, "serve (config from --config or GATEKEEPER_CONFIG)"),
        ("check", cmd_check, "validate the config and policy files; exit 0, or 2 with one line "
                             "per problem"),
    ):
        command = sub.add_parser(name, help=text)
        command.add_argument("--config", "-c", help="YAML config file")
        command.set_defaults(func=func)
    _add_policy_commands(sub)
    demo = sub.add_parser("demo", help="dev issuer + echo app + proxy, with ready-made tokens")
    demo.add_argument("--port", type=int, default=4180)
    demo.add_argument("--admin-port", type=int, default=9901)
    demo.add_argument("--check", action="store_true", help="run the self-check, then exit")
    demo.set_defaults(func=cmd_demo)
    return parser


def _add_caller_arguments(parser: Any) -> None:
    """The config and who is asking: what `policy test` and `policy explain` both read."""
    parser.add_argument("--config", "-c", help="YAML config file (default: GATEKEEPER_CONFIG)")
    parser.add_argument("--sub", help="the token's subject (an authenticated user)")
    parser.add_argument("--iss", help="the token's issuer: --sub gets its subject prefix")
    parser.add_argument("--role", action="append", default=[],
                        help="a role from the token (repeat)")
    parser.add_argument("--claim", action="append", default=[], metavar="KEY=VALUE",
                        help="a token claim (repeat); a value starting with [ or { is JSON")
    parser.add_argument("--anonymous", action="store_true", help="no credentials")
    parser.add_argument("--host", default="localhost", help="the Host header (a tenant by host)")
    parser.add_argument("--client", default="127.0.0.1", help="the client address (ipMatch)")


def _add_policy_commands(sub: Any) -> None:
    policy = sub.add_parser("policy", help="test, lint, explain and diff the Casbin policy files")
    commands = policy.add_subparsers(dest="policy_command", required=True)
    test = commands.add_parser(
        "test", help="decide one request (exit 0 allow, 1 deny, 2 error), or run --cases FILE",
        description="Decide METHOD PATH as the proxy would; or run a YAML file of cases.")
    _add_caller_arguments(test)
    test.add_argument("--cases", metavar="FILE", help="YAML list of request → expected decision")
    test.add_argument("method", nargs="?", metavar="METHOD")
    test.add_argument("path", nargs="?", metavar="PATH")
    test.set_defaults(func=cmd_policy_test)
    check = commands.add_parser(
        "check", help="load and lint the policy files: exit 0, or 1 with one line per problem")
    check.add_argument("--config", "-c", help="YAML config file (default: GATEKEEPER_CONFIG)")
    check.set_defaults(func=cmd_policy_check)
    explain = commands.add_parser(
        "explain", help="why one request is allowed or denied (exit 0 allow, 1 deny, 2 error)",
        description="Explain METHOD PATH: the rules that matched, the effect that decided, the "
                    "roles held and where each came from, and for a deny the nearest rules "
                    "that did not match with the first term that failed.")
    _add_caller_arguments(explain)
    explain.add_argument("--json", action="store_true", help="print the explanation as JSON")
    explain.add_argument("method", nargs="?", metavar="METHOD")
    explain.add_argument("path", nargs="?", metavar="PATH")
    explain.set_defaults(func=cmd_policy_explain)
    diff = commands.add_parser(
        "diff", help="the decisions that change between two policy versions (exit 1 if any "
                     "is not covered by --allow-change)",
        description="Decide the same requests under OLD and NEW (each: config, a directory, "
                    "MODEL,POLICY or git:REV) and print the decisions that change.")
    diff.add_argument("--config", "-c", help="YAML config file (default: GATEKEEPER_CONFIG)")
    diff.add_argument("old", metavar="OLD", help="config | DIR | MODEL,POLICY | git:REV")
    diff.add_argument("new", metavar="NEW", help="config | DIR | MODEL,POLICY | git:REV")
    diff.add_argument("--cases", metavar="FILE", help="also the requests of a policy test cases file")
    diff.add_argument("--traffic", metavar="FILE",
                      help="also the routes and subjects of gatekeeper's JSON access log")
    diff.add_argument("--traffic-lines", type=_positive, default=100_000, metavar="N",
                      help="read the last N lines of --traffic (default 100000)")
    diff.add_argument("--no-generated", dest="generate", action="store_false",
                      help="skip the edge cases generated from the rules")
    diff.add_argument("--max-requests", type=_positive, default=50_000, metavar="N",
                      help="compare at most N requests per source (default 50000)")
    diff.add_argument("--allow-change", action="append", default=[], metavar="PATTERN",
                      help="a change this covers does not fail the diff (repeat): words that "
                           "must all hold: METHOD, /PATH-GLOB, sub:GLOB, role:NAME, anonymous, "
                           "to:allow, to:deny")
    diff.add_argument("--json", action="store_true", help="print the changes as JSON")
    diff.set_defaults(func=cmd_policy_diff)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
