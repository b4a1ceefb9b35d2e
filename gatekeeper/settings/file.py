"""Reading the config: YAML file → ${ENV} expansion → GATEKEEPER_* overrides → Settings.

Every problem is reported together, each with its dotted key path and reason; no value is
ever echoed back (secrets live in values). The model itself, and all validation, is in
gatekeeper/settings/ (``Settings`` in __init__.py, a module per section).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gatekeeper.errors import ConfigError
from gatekeeper.settings import ENV_PREFIX, Settings

MAX_CONFIG_DEPTH = 32  # the deepest real key path is 5 levels (oidc.providers.0.scopes.0)
MAX_CONFIG_VALUES = 100_000  # far above any real file; bounds the walk of a YAML alias bomb
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(node: Any, path: str, environ: Mapping[str, str], problems: list[str]) -> Any:
    if isinstance(node, dict):
        return {k: _expand(v, f"{path}.{k}" if path else str(k), environ, problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand(v, f"{path}.{i}", environ, problems) for i, v in enumerate(node)]
    if isinstance(node, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            problems.append(f"{path}: environment variable {name} is not set")
            return ""

        return _ENV_REF.sub(substitute, node)
    return node


def _format_error(error: Any) -> str:
    loc = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = str(error["msg"])
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    # pydantic prefixes custom messages; the key path already says where.
    message = message.removeprefix("Value error, ")
    return f"{loc}: {message}"


def load_settings(path: str | Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Load, expand and validate; raise ConfigError listing every problem at once."""
    env = os.environ if environ is None else environ
    raw: Any = {}
    if path is not None:
        raw = _read_yaml(Path(path))
        if not isinstance(raw, dict):
            raise ConfigError([f"{path}: the top level must be a mapping of keys"])
        _check_shape(raw)
    problems: list[str] = []
    expanded = _expand(raw, "", env, problems)
    merged = _apply_env_overrides(expanded, env)
    _check_shape(merged)
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        problems.extend(_format_error(e) for e in exc.errors(include_input=False))
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    if settings.policy is not None and path is not None:
        # absolute(), not resolve(): in a ConfigMap volume the file is a symlink into a hidden
        # ..<timestamp>/ directory, and the policies sit next to the link, not its target.
        base = Path(path).absolute().parent
        policy = settings.policy.model_copy(update={
            "model": base / settings.policy.model, "policy": base / settings.policy.policy})
        settings = settings.model_copy(update={"policy": policy})
    return settings


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 (byte {exc.start})"]) from None
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError([f"{path}:{where} invalid YAML"]) from exc
    except ValueError:
        # PyYAML's constructors raise plain ValueError: "2001-02-30", an integer over Python's
        # 4,300-digit limit. The message may quote the value, so it is not repeated.
        raise ConfigError([f"{path}: invalid YAML (a date or number that cannot be read)"]) from None
    except RecursionError:
        raise ConfigError([f"{path}: invalid YAML (nested too deeply)"]) from None


def _check_shape(data: dict[str, Any]) -> None:
    """Bounded nesting and size, walked without recursion: YAML aliases share nodes, so ten
    lines can stand for millions of values ("billion laughs") or for a list holding itself."""
    stack: list[tuple[Any, int, str]] = [(data, 0, "")]
    seen = 0
    while stack:
        node, depth, path = stack.pop()
        seen += 1
        if seen > MAX_CONFIG_VALUES:
            raise ConfigError([f"(top level): more than {MAX_CONFIG_VALUES} values once YAML "
                               "aliases are expanded"])
        if depth > MAX_CONFIG_DEPTH:
            raise ConfigError([f"{path}: nested deeper than {MAX_CONFIG_DEPTH} levels"])
        if isinstance(node, dict):
            stack.extend((v, depth + 1, f"{path}.{k}" if path else str(k)) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, depth + 1, f"{path}.{i}") for i, v in enumerate(node))


# Kubernetes injects these for a Service named gatekeeper[-…] (service links): never config.
_SERVICE_LINK = re.compile(
    r"GATEKEEPER(_[A-Z0-9_]*)?_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT"
    r"|PORT_\d+_(TCP|UDP|SCTP)(_PROTO|_PORT|_ADDR)?)")


def _apply_env_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """GATEKEEPER_AUTH__LEEWAY_SECONDS=10 sets auth.leeway_seconds; JSON values for lists/maps."""
    merged = dict(data)
    for name, value in sorted(environ.items()):
        if (not name.startswith(ENV_PREFIX) or name == "GATEKEEPER_CONFIG"
                or _SERVICE_LINK.fullmatch(name)):
            continue
        keys = name[len(ENV_PREFIX) :].lower().split("__")
        parsed: Any = value
        if value[:1] in ("[", "{"):
            try:
                parsed = json.loads(value)
            except (ValueError, RecursionError):
                parsed = value  # let validation name the key and the reason
        node = merged
        for key in keys[:-1]:
            child = node.get(key)
            node[key] = dict(child) if isinstance(child, dict) else {}
            node = node[key]
        node[keys[-1]] = parsed
    return merged
