"""Command line: gatekeeper run | check | demo.

Config is validated before the server machinery is imported, so a bad file is refused at once.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from gatekeeper.errors import ConfigError
from gatekeeper.settings import Settings, load_settings, split_host_port


def _config_path(args: argparse.Namespace) -> str | None:
    path: str | None = args.config or os.environ.get("GATEKEEPER_CONFIG")
    return path


def _load_or_report(args: argparse.Namespace) -> Settings | None:
    try:
        return load_settings(_config_path(args))
    except ConfigError as exc:
        print(f"gatekeeper: invalid configuration ({len(exc.problems)} problem"
              f"{'s' if len(exc.problems) != 1 else ''}):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return None


def cmd_check(args: argparse.Namespace) -> int:
    settings = _load_or_report(args)
    if settings is None:
        return 2
    print(f"ok: {_config_path(args) or '(defaults)'} is valid "
          f"({len(settings.auth.issuers)} issuer(s), upstream {settings.upstream})")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    settings = _load_or_report(args)
    if settings is None:
        return 2
    serve(settings, _config_path(args))
    return 0


def serve(settings: Settings, config_path: str | None) -> None:
    import uvicorn

    from gatekeeper import logs
    from gatekeeper.app import create_app

    logs.configure(settings.log_level)
    host, port = split_host_port(settings.listen)
    app: Any = create_app(settings)
    if settings.workers > 1:
        # Each worker process rebuilds the same settings from the same file and environment;
        # their metrics are summed through prometheus-client's multiprocess directory.
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR",
                              tempfile.mkdtemp(prefix="gatekeeper-metrics-"))
        if config_path is not None:
            os.environ["GATEKEEPER_CONFIG"] = os.path.abspath(config_path)
        app = "gatekeeper.app:create_app_from_environment"
    config = uvicorn.Config(
        app,
        factory=settings.workers > 1,
        workers=settings.workers,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        lifespan="on",
        access_log=False,
        log_config=None,
        proxy_headers=False,  # X-Forwarded-* trust is gatekeeper's decision (trusted_proxies)
        server_header=False,
        timeout_graceful_shutdown=math.ceil(settings.drain_seconds),
        timeout_keep_alive=75,
    )
    if settings.workers > 1:
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=[config.bind_socket()]).run()
        return
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        sys.exit(3)


def cmd_demo(args: argparse.Namespace) -> int:
    from gatekeeper.demo import run_demo

    return run_demo(port=int(args.port), admin_port=int(args.admin_port),
                    exit_after_check=bool(args.check))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gatekeeper", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, text in (
        ("run", cmd_run, "serve (config from --config or GATEKEEPER_CONFIG)"),
        ("check", cmd_check, "validate the config; exit 0, or 2 with one line per problem"),
    ):
        command = sub.add_parser(name, help=text)
        command.add_argument("--config", "-c", help="YAML config file")
        command.set_defaults(func=func)
    demo = sub.add_parser("demo", help="dev issuer + echo app + proxy, with ready-made tokens")
    demo.add_argument("--port", type=int, default=4180)
    demo.add_argument("--admin-port", type=int, default=9901)
    demo.add_argument("--check", action="store_true", help="run the self-check, then exit")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
