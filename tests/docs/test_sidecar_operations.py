"""docs/sidecar.md and docs/operations.md, held to the code so they cannot drift.

- Every ```yaml block not marked ``<!-- fragment -->`` is a config the real loader accepts
  (``load_block``, as for docs/providers.md), sending to the app on loopback.
- Fragments are YAML. Those that are Kubernetes objects validate against the API's schemas
  (kubernetes-validate, strict); a ConfigMap's ``gatekeeper.yaml`` is a config the loader
  accepts; the sidecar's Deployment and Service follow the rules the page states (probes,
  grace period, target port).
- operations.md's metrics table lists exactly the metrics a fresh ``Metrics()`` registers, each
  with its exposed name, type and labels; any ``gatekeeper_*`` series either page names exists.
- Its access-log table lists exactly the fields ``Gate._record`` writes (read with ``ast``) plus
  the one ``AccessLog`` adds, and so does its example line.
- Its table of other log lines is exactly the package's log calls (logger, level, message,
  fields), leaving out the dev-only demo modules.
- Its readiness table names every check ``/readyz`` can run.
"""

from __future__ import annotations

import ast
import io
import json
import re
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from gatekeeper.logs import AccessLog
from gatekeeper.metrics import Metrics
from gatekeeper.ops.admin import Check, create_admin_app
from gatekeeper.settings import Settings, split_host_port
from tests.support.docs import Block, load_block, yaml_blocks
from tests.support.fakes import run
from tests.support.paths import ROOT

PACKAGE = ROOT / "gatekeeper"
DOCS = {name: (ROOT / "docs" / name).read_text(encoding="utf-8")
        for name in ("sidecar.md", "operations.md")}
OPERATIONS = DOCS["operations.md"]
KUBERNETES_VERSION = "1.30.0"  # the oldest the page's native-sidecar pod runs on (preStop sleep)
DEV_ONLY = PACKAGE / "dev"  # `gatekeeper demo`: not run in production

BLOCKS = [(name, block) for name, text in DOCS.items() for block in yaml_blocks(text)]
CONFIGS = [(name, block) for name, block in BLOCKS if not block.fragment]
FRAGMENTS = [(name, block) for name, block in BLOCKS if block.fragment]
CODE = re.compile(r"`([^`]+)`")


def _ids(blocks: list[tuple[str, Block]]) -> list[str]:
    return [f"{name} {block.id}" for name, block in blocks]


# -- reading the markdown ---------------------------------------------------------------------


def section(markdown: str, heading: str) -> str:
    """The text under ``heading`` (``## Metrics``), up to the next heading of its level or above.
    Lines in code blocks are never headings (PromQL comments start with ``#``)."""
    level = len(heading) - len(heading.lstrip("#"))
    out: list[str] = []
    inside = in_fence = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
        elif not in_fence and re.match(r"#+ ", line):
            depth = len(line) - len(line.lstrip("#"))
            if line.strip() == heading:
                inside = True
                continue
            if inside and depth <= level:
                break
        if inside:
            out.append(line)
    assert out, f"no section {heading!r}"
    return "\n".join(out)


def table(text: str, first_header: str) -> list[list[str]]:
    """The body rows of the markdown table whose first header cell is ``first_header``."""
    rows: list[list[str]] = []
    found = False
    for line in text.splitlines():
        if not line.startswith("|"):
            if found:
                break
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if not found:
            found = cells[0] == first_header
        elif not all(set(c) <= {"-", " ", ":"} for c in cells):  # not the |---| line
            rows.append(cells)
    assert rows, f"no table headed {first_header!r}"
    return rows


def names_in(cell: str) -> frozenset[str]:
    """The backquoted names in a table cell; ``—`` means none."""
    return frozenset(CODE.findall(cell))


def first_code(cell: str) -> str:
    """The cell's first backquoted text: the name a row documents."""
    found: list[str] = CODE.findall(cell)
    assert found, f"no `name` in {cell!r}"
    return found[0]


def json_blocks(text: str) -> list[Any]:
    return [json.loads(body) for body in re.findall(r"```json\n(.*?)\n```", text, re.S)]


# -- configs and manifests --------------------------------------------------------------------


def test_the_pages_have_configs_and_manifests() -> None:
    assert CONFIGS, "sidecar.md shows a complete gatekeeper config"
    kinds = {doc.get("kind") for _, block in FRAGMENTS for doc in yaml.safe_load_all(block.text)}
    assert {"ConfigMap", "Deployment", "Service"} <= kinds


@pytest.mark.parametrize(("page", "block"), CONFIGS, ids=_ids(CONFIGS))
def test_every_config_block_is_a_valid_config_for_an_app_on_loopback(
    page: str, block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_block(block, tmp_path, monkeypatch)
    assert settings.upstream.startswith("http://127.0.0.1:"), f"{page}: the app listens on loopback"
    assert settings.policy is None, "keep `policy:` out of whole configs (its files are not checked)"


@pytest.mark.parametrize(("page", "block"), FRAGMENTS, ids=_ids(FRAGMENTS))
def test_every_fragment_is_yaml_and_every_kubernetes_object_is_valid(
    page: str, block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for document in yaml.safe_load_all(block.text):
        assert isinstance(document, dict), f"{page} {block.id}: a YAML mapping"
        if "apiVersion" in document and "kind" in document:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        if document.get("kind") == "ConfigMap":
            for key, text in document.get("data", {}).items():
                if key.endswith(".yaml"):
                    load_block(Block(block.line, block.section, text, False), tmp_path, monkeypatch)


def _objects(kind: str) -> list[dict[str, Any]]:
    return [doc for page, block in FRAGMENTS if page == "sidecar.md"
            for doc in yaml.safe_load_all(block.text) if doc.get("kind") == kind]


def _sidecar_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    (configmap,) = _objects("ConfigMap")
    text = configmap["data"]["gatekeeper.yaml"]
    return load_block(Block(0, "ConfigMap", text, False), tmp_path, monkeypatch)


def _probe_path(container: dict[str, Any], probe: str) -> tuple[str, int]:
    action = container[probe]["httpGet"]
    assert isinstance(action["port"], int), f"{probe}: ports by number (native sidecars)"
    return action["path"], action["port"]


def test_the_native_sidecar_probes_grace_period_and_service_follow_the_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _sidecar_settings(tmp_path, monkeypatch)
    admin_port = split_host_port(settings.admin_listen)[1]
    (deployment,) = _objects("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (gatekeeper,) = [c for c in pod["initContainers"] if c["name"] == "gatekeeper"]
    assert gatekeeper["restartPolicy"] == "Always", "a native sidecar"
    # The startup probe must not wait for the app, which starts only after it passes.
    assert _probe_path(gatekeeper, "startupProbe") == ("/healthz", admin_port)
    assert _probe_path(gatekeeper, "livenessProbe") == ("/healthz", admin_port)
    assert _probe_path(gatekeeper, "readinessProbe") == ("/readyz", admin_port)
    assert pod["enableServiceLinks"] is False, "service links inject GATEKEEPER_* variables"
    (app,) = pod["containers"]
    assert "ports" not in app, "nothing outside the pod connects to the app"
    pre_stop = app["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pre_stop + settings.drain_seconds

    (service,) = _objects("Service")
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == split_host_port(settings.listen)[1], "gatekeeper's port only"


# -- metrics ------------------------------------------------------------------------------------


def registered_metrics() -> dict[str, tuple[str, frozenset[str]]]:
    """Exposed name → (type, label names), for a fresh Metrics(). Counters are exposed with
    ``_total``; a labelled family without children has no samples, so the label names come from
    the collector objects themselves."""
    metrics = Metrics()
    metric_objects = [getattr(m, "metric", m) for m in vars(metrics).values()]  # Bounded wraps
    labels = {m._name: frozenset(m._labelnames) for m in metric_objects
              if isinstance(m, MetricWrapperBase)}
    return {(f.name + "_total" if f.type == "counter" else f.name): (f.type, labels[f.name])
            for f in metrics.registry.collect()}


def series_names() -> set[str]:
    names: set[str] = set()
    for name, (kind, _) in registered_metrics().items():
        if kind == "counter":
            names |= {name, name.removesuffix("_total") + "_created"}
        elif kind == "histogram":
            names |= {name + suffix for suffix in ("", "_bucket", "_sum", "_count", "_created")}
        else:
            names.add(name)
    return names


def test_the_metrics_table_is_exactly_what_gatekeeper_registers() -> None:
    rows = table(section(OPERATIONS, "## Metrics"), "metric")
    documented = {first_code(name): (kind, names_in(labels)) for name, kind, labels, _ in rows}
    assert len(documented) == len(rows), "a metric listed twice"
    registered = registered_metrics()
    assert sorted(set(registered) - set(documented)) == [], "registered but not documented"
    assert sorted(set(documented) - set(registered)) == [], "documented but not registered"
    for name, expected in registered.items():
        assert documented[name] == expected, f"{name}: type and labels"


@pytest.mark.parametrize("page", sorted(DOCS))
def test_every_metric_the_page_names_exists(page: str) -> None:
    mentioned = set(re.findall(r"\bgatekeeper_[a-z_]*[a-z]", DOCS[page]))
    assert sorted(mentioned - series_names()) == []


# -- access log ---------------------------------------------------------------------------------


def record_fields() -> set[str]:
    """The keys of the dict ``Gate._record`` hands to the access log."""
    tree = ast.parse((PACKAGE / "edge" / "gate.py").read_text(encoding="utf-8"))
    (record,) = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "_record"]
    (write,) = [n for n in ast.walk(record) if isinstance(n, ast.Call)
                and isinstance(n.func, ast.Attribute) and n.func.attr == "write"]
    (entry,) = write.args
    if isinstance(entry, ast.Name):  # built just before: ``entry = {...}``, then written
        (entry,) = [n.value for n in ast.walk(record) if isinstance(n, ast.Assign)
                    and [getattr(t, "id", None) for t in n.targets] == [entry.id]]
    assert isinstance(entry, ast.Dict)
    keys = [k.value for k in entry.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
    assert len(keys) == len(entry.keys), "only literal keys (no **spread) in the access-log line"
    return set(keys)


def access_log_own_fields() -> set[str]:
    """What AccessLog adds to every entry (the time), by writing an empty one."""
    stream = io.StringIO()

    async def write_one() -> None:
        log = AccessLog(stream=stream)
        log.write({})
        log.flush()

    run(write_one())
    return set(json.loads(stream.getvalue()))


def test_the_access_log_table_and_example_are_exactly_the_fields_written() -> None:
    written = record_fields() | access_log_own_fields()
    assert {"request_id", "status", "reason", "time"} <= written
    text = section(OPERATIONS, "### Access log")
    documented = [first_code(row[0]) for row in table(text, "field")]
    assert sorted(documented) == sorted(written)
    (example,) = json_blocks(text)
    assert set(example) == written


# -- other log lines ----------------------------------------------------------------------------

LEVELS = {"debug", "info", "warning", "error", "exception", "critical"}


def code_log_lines() -> set[tuple[str, str, str, frozenset[str]]]:
    """(logger, level, message, extra fields) of every ``log.<level>(...)`` in the package."""
    lines: set[tuple[str, str, str, frozenset[str]]] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.is_relative_to(DEV_ONLY):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
                 and isinstance(n.func, ast.Attribute) and n.func.attr in LEVELS
                 and isinstance(n.func.value, ast.Name) and n.func.value.id == "log"]
        if not calls:
            continue
        (logger,) = [n.value.args[0].value for n in tree.body if isinstance(n, ast.Assign)
                     and isinstance(n.value, ast.Call) and isinstance(n.value.func, ast.Attribute)
                     and n.value.func.attr == "getLogger" and n.value.args
                     and isinstance(n.value.args[0], ast.Constant)]
        assert isinstance(logger, str), f"{path}: a literal logger name"
        for call in calls:
            message = call.args[0]
            assert isinstance(message, ast.Constant) and isinstance(message.value, str), (
                f"{path}:{call.lineno}: a literal message")
            assert isinstance(call.func, ast.Attribute)  # as selected above
            fields: set[str] = set()
            for keyword in call.keywords:
                if keyword.arg == "extra":
                    assert isinstance(keyword.value, ast.Dict), f"{path}:{call.lineno}"
                    fields |= {k.value for k in keyword.value.keys
                               if isinstance(k, ast.Constant) and isinstance(k.value, str)}
            lines.add((logger, call.func.attr, message.value, frozenset(fields)))
    return lines


def test_the_other_log_lines_table_is_exactly_the_code_s_log_calls() -> None:
    rows = table(section(OPERATIONS, "### Other log lines"), "level")
    documented = {(first_code(logger), level, first_code(message), names_in(fields))
                  for level, logger, message, fields in rows}
    assert len(documented) == len(rows), "a log line listed twice"
    code = code_log_lines()
    assert sorted(code - documented) == [], "logged but not documented (or documented differently)"
    assert sorted(documented - code) == [], "documented but not logged"


def test_the_log_line_example_has_the_common_fields() -> None:
    (example,) = json_blocks(section(OPERATIONS, "### Other log lines"))
    assert list(example)[:4] == ["time", "level", "logger", "message"]
    assert (example["logger"], example["level"], example["message"]) in {
        (logger, level, message) for logger, level, message, _ in code_log_lines()}


# -- readiness ----------------------------------------------------------------------------------


def extra_check_names() -> set[str]:
    """The names app.py and the wiring it calls give the checks they add to /readyz
    (``extra_checks[...]``)."""
    trees = [ast.parse(path.read_text(encoding="utf-8"))
             for path in [PACKAGE / "app.py", *sorted((PACKAGE / "wiring").glob("*.py"))]]
    names: set[str] = set()
    for node in (node for tree in trees for node in ast.walk(tree)):
        if (isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store)
                and isinstance(node.value, ast.Name) and node.value.id == "extra_checks"):
            assert isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str)
            names.add(node.slice.value)
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and node.target.id == "extra_checks" and isinstance(node.value, ast.Dict)):
            names |= {k.value for k in node.value.keys
                      if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    return names


class _Keys:
    ready, last_error = True, None


class _Upstream:
    async def check(self) -> Check:
        return Check(True, "up")


def readiness_check_names() -> set[str]:
    """Every check /readyz can report: the admin app's own (run for real, with one issuer whose
    url becomes ``<iss>``) and the ones app.py adds."""
    issuer = "https://idp.example.com/realms/demo"
    admin = create_admin_app(Metrics(), {issuer: _Keys()},  # type: ignore[dict-item]
                             _Upstream())  # type: ignore[arg-type]  # duck-typed stand-ins

    async def ask() -> dict[str, object]:
        transport = httpx.ASGITransport(app=admin)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
            checks: dict[str, object] = (await client.get("/readyz")).json()["checks"]
            return checks

    own = run(ask())
    return {name.replace(issuer, "<iss>") for name in own} | extra_check_names()


def test_the_readiness_table_names_every_check() -> None:
    text = section(OPERATIONS, "## Readiness")
    documented = [first_code(row[0]) for row in table(text, "check")]
    assert sorted(documented) == sorted(readiness_check_names())
    (example,) = json_blocks(text)
    assert set(example) == {"ready", "failing", "checks"}


# -- links ----------------------------------------------------------------------------------------


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    found: set[str] = set()
    in_fence = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
        elif not in_fence and (heading := re.match(r"#+ (.*)", line)):
            text = heading.group(1).strip().lower().replace("`", "")
            found.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return found


@pytest.mark.parametrize("page", sorted(DOCS))
def test_every_local_link_and_anchor_resolves(page: str) -> None:
    for target, anchor in re.findall(r"\]\(([^)#:\s]*)(?:#([^)\s]+))?\)", DOCS[page]):
        path = (ROOT / "docs" / target).resolve() if target else ROOT / "docs" / page
        assert path.exists(), f"{page}: link to {target}"
        if anchor and path.suffix == ".md":
            assert anchor in anchors(path.read_text(encoding="utf-8")), f"{page}: {target}#{anchor}"
