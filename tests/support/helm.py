"""Rendering deploy/helm/gatekeeper with Helm's own engine, without a helm binary.

`helm` cannot be installed on these machines: it is in none of the registries they reach
(Debian, PyPI, npm). helm-python-sdk ships Helm v4's Go SDK (the code behind `helm template`
and `helm lint`) as a shared library in a wheel, so the chart is rendered by Helm itself, not by
an imitation. Its Python `Chart.render` does not pass a Kubernetes version through yet, though
the C function it calls takes one: `render` calls that function directly.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import helm_python
import yaml
from helm_python import _native

from tests.support.kube import ROOT, Doc

CHART = ROOT / "deploy" / "helm" / "gatekeeper"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
NOTES = "gatekeeper/templates/NOTES.txt"

HelmError = helm_python.HelmError


def load_values(path: Path) -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return values


def render(
    values: dict[str, Any],
    *,
    kube_version: str | None = None,
    release: str = "app",
    namespace: str = "default",
) -> dict[str, str]:
    """Template path → rendered text, as `helm template --kube-version` would print them.
    Strict: a template reading a value that does not exist fails instead of rendering empty."""
    options: dict[str, Any] = {"name": release, "namespace": namespace, "is_install": True, "strict": True}
    if kube_version is not None:
        options["kube_version"] = kube_version
    with helm_python.Chart.load(CHART) as chart:
        rendered = _native.call_string("helm_render", chart._raw(), json.dumps(values), json.dumps(options))
    manifests: dict[str, str] = json.loads(rendered)
    return manifests


def objects(manifests: dict[str, str]) -> dict[tuple[str, str], Doc]:
    """The rendered Kubernetes objects keyed by (kind, name); NOTES.txt is text for the user."""
    found: dict[tuple[str, str], Doc] = {}
    for path, text in manifests.items():
        if path == NOTES:
            continue
        for doc in yaml.safe_load_all(text):
            if doc is None:
                continue
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in found, f"{key} rendered twice"
            found[key] = doc
    return found


def lint(values: dict[str, Any] | None = None, *, kube_version: str | None = None) -> list[str]:
    """`helm lint --strict`: every finding worse than informational, as 'path: message'."""
    report = helm_python.lint(CHART, values, strict=True, kube_version=kube_version)
    return [f"{m['path']}: {m['error']}" for m in report["messages"] if m["severity"] >= 2]


# --- the values reference: values.yaml's `# --` comments, the schema's tree ------------------


def value_paths(schema: Doc | None = None, values: Any = None, prefix: str = "") -> dict[str, Any]:
    """Every documented value (a schema node without `properties` of its own) → its default."""
    if schema is None:
        schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
        values = load_values(CHART / "values.yaml")
    definitions = _schema()["definitions"]
    found: dict[str, Any] = {}
    for key, node in schema["properties"].items():
        path = f"{prefix}{key}"
        assert isinstance(values, dict) and key in values, f"values.yaml has no default for {path}"
        if "$ref" in node:
            node = definitions[node["$ref"].rsplit("/", 1)[1]]
        if "properties" in node:
            found.update(value_paths(node, values[key], f"{path}."))
        else:
            found[path] = values[key]
    return found


def _schema() -> Doc:
    schema: Doc = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    return schema


_KEY = re.compile(r"^( *)([A-Za-z][A-Za-z0-9_]*):(?: |$)")


def value_comments() -> dict[str, str]:
    """Each key's dotted path in values.yaml → its `# --` description: the comment lines from
    `# --` up to the first empty comment line (what follows, like an example, is not part)."""
    comments: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    block: list[str] = []
    for line in (CHART / "values.yaml").read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("#"):
            block.append(line.strip()[1:].strip())
            continue
        key = _KEY.match(line)
        if key is None:  # a list item, a line of a multi-line string, a blank line
            block = []
            continue
        indent = len(key.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key.group(2)))
        if block and block[0].startswith("--"):
            text = [block[0][2:].strip()]
            for more in block[1:]:
                if not more:
                    break
                text.append(more)
            comments[".".join(name for _, name in stack)] = " ".join(text)
        block = []
    return comments


def values_table() -> str:
    """The chart README's values table, generated: `python -m tests.support.helm` prints it."""
    comments = value_comments()
    rows = ["| Value | Default | Description |", "|---|---|---|"]
    for path, default in value_paths().items():
        shown = json.dumps(default)
        cell = f"`{shown}`" if len(shown) <= 40 else "see values.yaml"
        rows.append(f"| `{path}` | {cell} | {comments.get(path, '').replace('|', '&#124;')} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(values_table(), end="")
