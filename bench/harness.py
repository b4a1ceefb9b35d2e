"""Benchmark harness: a tiny nginx upstream, server processes, wrk runs and CPU accounting.

Everything binds to 127.0.0.1 and every load run is bounded by wrk's ``-d`` (plus a hard
subprocess timeout). One measured run of a scenario:

1. a short wrk warm-up against the scenario's URL (not measured);
2. CPU time of the server's process tree (and of the nginx upstream) read from /proc;
3. ``wrk -t1 -cN -dS --latency URL``;
4. CPU time read again; CPU µs/request = delta CPU s * 1e6 / requests wrk completed.

Scenarios are interleaved round-robin (round 1: A B C, round 2: A B C, ...) so that slow drifts
of a shared, noisy machine spread over all of them; each figure is reported as the median over
rounds. Results go to a markdown table (stdout and/or a file) and a JSON file with every run.

CLI (see ``--help``)::

    python bench/harness.py run \\
        --scenario 'nginx-direct=@upstream' \\
        --scenario 'aiohttp={python} -m uvicorn --app-dir bench/clients aiohttp_proxy:app \\
            --host 127.0.0.1 --port {port} --loop uvloop --http httptools --no-access-log' \\
        --connections 32,4 --duration 8 --rounds 3 --json bench/out/clients.json

    python bench/harness.py upstream --seconds 60   # a standalone nginx to poke at by hand

A scenario command may use ``{python}`` (this interpreter), ``{port}`` (a free port the server
must listen on) and ``{upstream_port}``; the server also gets ``BENCH_UPSTREAM`` in its
environment (``http://127.0.0.1:<nginx port>``). ``@upstream`` means: load nginx itself.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
WRK = shutil.which("wrk") or "/usr/bin/wrk"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


# --------------------------------------------------------------------------- processes & ports


def free_port() -> int:
    """A currently free TCP port on the loopback interface (small race until it is bound)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Wait until 127.0.0.1:port accepts a connection; fail early if the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.pid} exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {LOOPBACK}:{port} after {timeout:.0f} s")


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, grace: float = 10.0) -> None:
    """Stop one process we started, by its pid: `sig`, then SIGKILL after `grace` seconds."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace)


@contextlib.contextmanager
def running_server(
    command: Sequence[str], port: int, log_path: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command` (stdout+stderr to `log_path`) until the block ends; yield once it listens."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # the terminal's Ctrl-C goes to the harness, which stops it
        )
        try:
            try:
                wait_for_port(port, proc)
            except (RuntimeError, TimeoutError):
                sys.stderr.write(log_path.read_text(errors="replace")[-4000:])
                raise
            yield proc
        finally:
            stop_process(proc)


# --------------------------------------------------------------------------- CPU accounting


def _stat_cpu_ticks(pid: int) -> int:
    """utime + stime of one process (all its threads), in clock ticks, from /proc/PID/stat."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    # Field 2 (comm) is in parentheses and may hold spaces: split after the last ')'.
    # The remainder starts at field 3 (state); utime and stime are fields 14 and 15.
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[14 - 3]) + int(fields[15 - 3])


def _children(pid: int) -> list[int]:
    """Live children of `pid`, from /proc/PID/task/*/children (children of any thread)."""
    kids: list[int] = []
    for children_file in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            kids.extend(int(child) for child in children_file.read_text().split())
    return kids


def process_tree_cpu_seconds(root_pid: int) -> float:
    """CPU seconds (user + system) of `root_pid` and all its live descendants.

    Each live process's own utime+stime is summed. cutime/cstime are deliberately not used: they
    only count children already reaped, so they miss live workers. (A child that exits during a
    measurement is missed; the servers measured here keep their workers for the whole run.)
    """
    total_ticks = 0
    pending = [root_pid]
    while pending:
        pid = pending.pop()
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total_ticks += _stat_cpu_ticks(pid)
            pending.extend(_children(pid))
    return total_ticks / CLK_TCK


def foreign_wrk_processes() -> int:
    """wrk processes running now that this process did not start: another benchmark loading the
    same cores, which makes this run's figures worthless (its runs are flagged, not dropped)."""
    count = 0
    for comm in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if comm.read_text().strip() != "wrk":
                continue
            stat = (comm.parent / "stat").read_text()
            if int(stat[stat.rindex(")") + 2 :].split()[1]) != os.getpid():  # field 4: ppid
                count += 1
    return count


# --------------------------------------------------------------------------- nginx upstream

NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    default_type text/plain;
    keepalive_timeout 75s;
    keepalive_requests 1000000;  # no connection churn during a run (default is 1000)
    server {{
        listen {listen};
        # For the harness's check that a proxy never replays one user's cookie to another.
        location = /set-cookie {{
            add_header Set-Cookie "bench_sid=from-another-user; Path=/" always;
            return 200 "set\\n";
        }}
        location = /echo-cookie {{ return 200 "cookie=[$http_cookie]\\n"; }}
        # For the checks that a server passes the caller's identity, and only the one it found.
        location = /echo-identity {{ return 200 "user=[$http_x_auth_request_user]\\n"; }}
        # Accepted-connection counter: shows whether a client reuses its upstream connections.
        location = /nginx_status {{ stub_status; }}
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""


@dataclass
class NginxUpstream:
    """A single-process nginx on a free loopback port, all its files in a temp dir."""

    port: int = 0
    tmp_dir: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def accepted_connections(self) -> int:
        """nginx's count of accepted connections so far (this query's own one included)."""
        with urllib.request.urlopen(self.url + "/nginx_status", timeout=5) as response:
            status = response.read().decode()
        # "Active connections: 1 \nserver accepts handled requests\n 7 7 9 \n..."
        return int(status.splitlines()[2].split()[0])

    def start(self) -> NginxUpstream:
        self.tmp_dir = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
        self.port = free_port()
        conf = self.tmp_dir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=self.tmp_dir, listen=f"{LOOPBACK}:{self.port}"))
        # -p: prefix for relative paths; -e: error log from the very start (before the config
        # is read), so nothing is written to /var/log/nginx and it runs as root or non-root.
        command = [
            NGINX,
            "-p",
            str(self.tmp_dir),
            "-e",
            str(self.tmp_dir / "error.log"),
            "-c",
            str(conf),
        ]
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_for_port(self.port, self.proc)
        except (RuntimeError, TimeoutError):
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, signal.SIGQUIT)  # graceful shutdown
            self.proc = None
        if self.tmp_dir is not None:
            shutil.rmtree(self.tmp_dir, ignore_errors=True)
            self.tmp_dir = None

    def __enter__(self) -> NginxUpstream:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- wrk


@dataclass(frozen=True)
class WrkResult:
    requests: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors (connect/read/write/timeout) + non-2xx/3xx responses


_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if match is None:
        raise ValueError(f"unexpected wrk duration {text!r}")
    return float(match[1]) * _UNIT_MS[match[2]]


def parse_wrk(output: str) -> WrkResult:
    """Parse `wrk --latency` output (wrk 4.x)."""

    def need(pattern: str) -> re.Match[str]:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise ValueError(f"wrk output lacks {pattern!r}:\n{output}")
        return match

    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return WrkResult(
        requests=int(need(r"^\s*(\d+) requests in")[1]),
        requests_per_s=float(need(r"^Requests/sec:\s+([\d.]+)")[1]),
        p50_ms=_duration_ms(need(r"^\s+50%\s+(\S+)")[1]),
        p99_ms=_duration_ms(need(r"^\s+99%\s+(\S+)")[1]),
        errors=(sum(int(n) for n in socket_errors.groups()) if socket_errors else 0)
        + (int(non_2xx[1]) if non_2xx else 0),
    )


def run_wrk(
    url: str, connections: int, seconds: int, headers: Sequence[str] = (), threads: int = 1,
    script: str | None = None,
) -> WrkResult:
    command = [WRK, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script is not None:
        command += ["-s", script]
    for header in headers:
        command += ["-H", header]
    done = subprocess.run([*command, url], capture_output=True, text=True, timeout=seconds + 30)
    if done.returncode != 0:
        raise RuntimeError(f"wrk exited with {done.returncode}: {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


# --------------------------------------------------------------------------- scenarios & runs


@dataclass(frozen=True)
class Check:
    """One pre-flight request a scenario's server must answer as stated, e.g. a refusal: proof
    that a peer does the job (checks the token, the role) and does not merely proxy."""

    what: str  # reads as a sentence in a PROBLEM line: "expired token"
    path: str
    headers: tuple[str, ...]
    status: int
    body_has: str | None = None  # the answer's body must contain this...
    body_lacks: str | None = None  # ...and must not contain this


@dataclass(frozen=True)
class Scenario:
    name: str
    command: str  # shell-like command line with placeholders, or "@upstream"
    env: dict[str, str] = field(default_factory=dict)
    path: str | None = None  # overrides run_benchmark's path for this scenario
    headers: tuple[str, ...] | None = None  # overrides run_benchmark's wrk headers
    script: str | None = None  # a wrk Lua script (e.g. varying paths)
    checks: tuple[Check, ...] = ()  # pre-flight requests beyond check_proxy's own

    @property
    def is_upstream(self) -> bool:
        return self.command.strip() == "@upstream"


@dataclass(frozen=True)
class RunResult:
    scenario: str
    connections: int
    round: int
    requests: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu_us_per_req: float
    upstream_cpu_us_per_req: float | None  # nginx's share, when the scenario is a proxy
    upstream_connections: int  # connections nginx accepted during the measured run
    foreign_wrk: int = 0  # other benchmarks' wrk processes seen before or after the run


@dataclass(frozen=True)
class Summary:
    scenario: str
    connections: int
    rounds: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    server_cpu_us_per_req: float
    server_cpu_us_per_req_min: float
    server_cpu_us_per_req_max: float
    upstream_cpu_us_per_req: float | None
    upstream_connections: float
    errors_total: int
    overlapped_runs: int = 0  # runs with another benchmark's wrk around (see foreign_wrk)


@dataclass(frozen=True)
class Measurement:
    wrk: WrkResult
    server_cpu_us_per_req: float
    upstream_cpu_us_per_req: float | None
    upstream_connections: int
    foreign_wrk: int = 0


def measure(
    url: str,
    server_pid: int,
    upstream: NginxUpstream,
    connections: int,
    seconds: int,
    warmup: int,
    headers: Sequence[str],
    script: str | None = None,
) -> Measurement:
    """Warm up, then one measured wrk run: wrk's figures and CPU µs/req of server and nginx."""
    assert upstream.proc is not None
    upstream_pid = upstream.proc.pid
    if warmup > 0:
        run_wrk(url, connections, warmup, headers, script=script)
    accepted_before = upstream.accepted_connections()
    foreign_before = foreign_wrk_processes()
    server_before = process_tree_cpu_seconds(server_pid)
    upstream_before = process_tree_cpu_seconds(upstream_pid)
    result = run_wrk(url, connections, seconds, headers, script=script)
    server_cpu = process_tree_cpu_seconds(server_pid) - server_before
    upstream_cpu = process_tree_cpu_seconds(upstream_pid) - upstream_before
    accepted = upstream.accepted_connections() - accepted_before - 1  # minus the query itself
    foreign = max(foreign_before, foreign_wrk_processes())
    per_request = 1e6 / max(result.requests, 1)
    is_proxy = server_pid != upstream_pid
    return Measurement(
        wrk=result,
        server_cpu_us_per_req=server_cpu * per_request,
        upstream_cpu_us_per_req=upstream_cpu * per_request if is_proxy else None,
        upstream_connections=accepted,
        foreign_wrk=foreign,
    )


def _get(url: str, headers: Sequence[str]) -> tuple[int, str]:
    """GET `url` with `headers` ("Name: value"); the status and body, error statuses included."""
    request = urllib.request.Request(url, headers=dict(h.split(": ", 1) for h in headers))
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode(errors="replace")


def run_checks(base_url: str, checks: Sequence[Check]) -> list[str]:
    """Each check's request against the server; a problem line for each answer not as stated."""
    problems = []
    for check in checks:
        status, body = _get(base_url + check.path, check.headers)
        if status != check.status:
            problems.append(f"{check.what}: {check.path} gave {status}, expected {check.status}")
        elif check.body_has is not None and check.body_has not in body:
            problems.append(f"{check.what}: body {body.strip()!r} lacks {check.body_has!r}")
        elif check.body_lacks is not None and check.body_lacks in body:
            problems.append(f"{check.what}: body {body.strip()!r} holds {check.body_lacks!r}")
    return problems


def check_proxy(
    base_url: str, headers: Sequence[str] = (), checks: Sequence[Check] = ()
) -> list[str]:
    """Functional checks before loading a server: it answers "ok", replays no cookie, and
    answers each of `checks` as stated."""
    problems: list[str] = []

    def get(path: str) -> tuple[int, str]:
        return _get(base_url + path, headers)

    status, body = get("/")
    if (status, body) != (200, "ok\n"):
        problems.append(f"GET / gave {status} {body!r}, expected 200 'ok\\n'")
    get("/set-cookie")  # the upstream sets a cookie, as for one user...
    _, echoed = get("/echo-cookie")  # ...and this request (another user) must not carry it
    if echoed != "cookie=[]\n":
        problems.append(f"cookie replayed to another request: upstream saw {echoed.strip()!r}")
    return problems + run_checks(base_url, checks)


def expand(template: str, **values: str) -> str:
    for key, value in values.items():
        template = template.replace("{" + key + "}", value)
    return template


def run_benchmark(
    scenarios: Sequence[Scenario],
    connections: Sequence[int],
    seconds: int,
    warmup: int,
    rounds: int,
    path: str = "/",
    headers: Sequence[str] = (),
    log_dir: Path | None = None,
    check_headers: Sequence[str] | None = None,
) -> tuple[list[RunResult], dict[str, list[str]]]:
    """Start nginx and every scenario's server, then run rounds x scenarios x connections."""
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="bench-logs-"))
    runs: list[RunResult] = []
    problems: dict[str, list[str]] = {}
    with NginxUpstream() as upstream, contextlib.ExitStack() as stack:
        assert upstream.proc is not None
        targets: dict[str, tuple[str, int]] = {}  # name -> base url, pid to measure
        for scenario in scenarios:
            if scenario.is_upstream:
                targets[scenario.name] = (upstream.url, upstream.proc.pid)
                continue
            port = free_port()
            values = {
                "python": sys.executable,
                "port": str(port),
                "upstream_port": str(upstream.port),
            }
            command = shlex.split(expand(scenario.command, **values))
            env = {"BENCH_UPSTREAM": upstream.url}
            env |= {key: expand(value, **values) for key, value in scenario.env.items()}
            log_path = log_dir / f"{scenario.name}.log"
            proc = stack.enter_context(running_server(command, port, log_path, env))
            base_url = f"http://{LOOPBACK}:{port}"
            problems[scenario.name] = check_proxy(
                base_url, headers if check_headers is None else check_headers, scenario.checks)
            targets[scenario.name] = (base_url, proc.pid)
        print(f"# logs in {log_dir}", file=sys.stderr)
        for round_no in range(1, rounds + 1):
            for scenario in scenarios:
                base_url, pid = targets[scenario.name]
                for conns in connections:
                    m = measure(
                        base_url + (scenario.path or path), pid, upstream, conns, seconds, warmup,
                        headers if scenario.headers is None else scenario.headers,
                        script=scenario.script)
                    wrk = m.wrk
                    run = RunResult(
                        scenario=scenario.name,
                        connections=conns,
                        round=round_no,
                        requests=wrk.requests,
                        requests_per_s=wrk.requests_per_s,
                        p50_ms=wrk.p50_ms,
                        p99_ms=wrk.p99_ms,
                        errors=wrk.errors,
                        server_cpu_us_per_req=m.server_cpu_us_per_req,
                        upstream_cpu_us_per_req=m.upstream_cpu_us_per_req,
                        upstream_connections=m.upstream_connections,
                        foreign_wrk=m.foreign_wrk,
                    )
                    runs.append(run)
                    print(
                        f"round {round_no} {scenario.name:<22} c{conns:<3} "
                        f"{wrk.requests_per_s:>8.0f} req/s  p50 {wrk.p50_ms:7.2f} ms  "
                        f"p99 {wrk.p99_ms:7.2f} ms  {m.server_cpu_us_per_req:7.1f} µs/req  "
                        f"new upstream conns {m.upstream_connections}  errors {wrk.errors}"
                        + (f"  OVERLAPPED by {m.foreign_wrk} other wrk" if m.foreign_wrk else ""),
                        file=sys.stderr,
                        flush=True,
                    )
    return runs, problems


def summarize(runs: Sequence[RunResult]) -> list[Summary]:
    """Median of every figure per (scenario, connections), in first-seen order."""
    groups: dict[tuple[str, int], list[RunResult]] = {}
    for run in runs:
        groups.setdefault((run.scenario, run.connections), []).append(run)
    summaries = []
    for (name, conns), group in groups.items():
        cpu = [run.server_cpu_us_per_req for run in group]
        upstream = [run.upstream_cpu_us_per_req for run in group]
        summaries.append(
            Summary(
                scenario=name,
                connections=conns,
                rounds=len(group),
                requests_per_s=statistics.median(run.requests_per_s for run in group),
                p50_ms=statistics.median(run.p50_ms for run in group),
                p99_ms=statistics.median(run.p99_ms for run in group),
                server_cpu_us_per_req=statistics.median(cpu),
                server_cpu_us_per_req_min=min(cpu),
                server_cpu_us_per_req_max=max(cpu),
                upstream_cpu_us_per_req=(
                    None if None in upstream else statistics.median(u for u in upstream if u is not None)
                ),
                upstream_connections=statistics.median(run.upstream_connections for run in group),
                errors_total=sum(run.errors for run in group),
                overlapped_runs=sum(1 for run in group if run.foreign_wrk),
            )
        )
    return summaries


def markdown_table(summaries: Sequence[Summary]) -> str:
    lines = [
        "| scenario | conns | req/s | p50 ms | p99 ms | server CPU µs/req (min-max) "
        "| nginx CPU µs/req | new upstream conns | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        upstream = "—" if s.upstream_cpu_us_per_req is None else f"{s.upstream_cpu_us_per_req:.0f}"
        lines.append(
            f"| {s.scenario} | {s.connections} | {s.requests_per_s:,.0f} | {s.p50_ms:.2f} "
            f"| {s.p99_ms:.2f} | {s.server_cpu_us_per_req:,.0f} "
            f"({s.server_cpu_us_per_req_min:,.0f}-{s.server_cpu_us_per_req_max:,.0f}) "
            f"| {upstream} | {s.upstream_connections:g} | {s.errors_total} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI


def parse_scenario(text: str) -> Scenario:
    name, sep, command = text.partition("=")
    if not sep or not name.strip() or not command.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=COMMAND, got {text!r}")
    return Scenario(name.strip(), command.strip())


def apply_env(scenarios: list[Scenario], env_args: Sequence[str]) -> list[Scenario]:
    """--env NAME:KEY=VALUE adds an environment variable to scenario NAME."""
    by_name = {scenario.name: scenario for scenario in scenarios}
    for item in env_args:
        name, _, assignment = item.partition(":")
        key, sep, value = assignment.partition("=")
        if name not in by_name or not sep or not key:
            raise SystemExit(f"--env {item!r}: expected NAME:KEY=VALUE with a known scenario NAME")
        by_name[name].env[key] = value
    return scenarios


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="benchmark scenarios against a fresh nginx upstream")
    run.add_argument(
        "--scenario",
        action="append",
        type=parse_scenario,
        required=True,
        metavar="NAME=COMMAND",
        help="server command, or NAME=@upstream for nginx",
    )
    run.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME:KEY=VALUE",
        help="extra environment variable for one scenario's server",
    )
    run.add_argument("--connections", default="32,4", help="comma-separated wrk -c values")
    run.add_argument("--duration", type=int, default=8, help="seconds per measured run")
    run.add_argument("--warmup", type=int, default=2, help="seconds of wrk before each run")
    run.add_argument("--rounds", type=int, default=3)
    run.add_argument("--path", default="/", help="request path")
    run.add_argument("-H", "--header", action="append", default=[], help="wrk -H header")
    run.add_argument("--json", type=Path, help="write every run and the medians here")
    run.add_argument("--markdown", type=Path, help="write the table of medians here")
    run.add_argument("--log-dir", type=Path, help="server logs (default: a temp dir)")

    upstream = commands.add_parser("upstream", help="run the nginx upstream alone for a while")
    upstream.add_argument("--seconds", type=float, default=60.0)

    args = parser.parse_args(argv)
    # SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so nginx and the servers are stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if args.command == "upstream":
        with NginxUpstream() as nginx:
            print(f"nginx upstream on {nginx.url} for {args.seconds:g} s", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                time.sleep(args.seconds)
        return 0

    scenarios = apply_env(args.scenario, args.env)
    if len({s.name for s in scenarios}) != len(scenarios):
        raise SystemExit("scenario names must be unique")
    if args.log_dir:
        args.log_dir.mkdir(parents=True, exist_ok=True)
    connections = [int(c) for c in args.connections.split(",")]
    started, load_before = time.time(), os.getloadavg()
    runs, problems = run_benchmark(
        scenarios,
        connections,
        args.duration,
        args.warmup,
        args.rounds,
        args.path,
        args.header,
        args.log_dir,
    )
    finished, load_after = time.time(), os.getloadavg()
    summaries = summarize(runs)
    table = markdown_table(summaries)
    print(table)
    for name, issues in problems.items():
        for issue in issues:
            print(f"PROBLEM {name}: {issue}")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table + "\n")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(finished)),
            "loadavg_before": load_before,
            "loadavg_after": load_after,
            "settings": {
                "connections": connections,
                "duration_s": args.duration,
                "warmup_s": args.warmup,
                "rounds": args.rounds,
                "path": args.path,
                "headers": args.header,
                "wrk_threads": 1,
            },
            "scenarios": [asdict(s) for s in scenarios],
            "problems": problems,
            "medians": [asdict(s) for s in summaries],
            "runs": [asdict(r) for r in runs],
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 1 if any(problems.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
