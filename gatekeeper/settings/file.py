"""Reading the config: YAML file → ${ENV} expansion → GATEKEEPER_* overrides → Settings.

Every problem is reported together, each with its dotted key path and reason. A value may be
quoted for its own key (a path pattern, a header name) but a secret never is, not even inside
another key's value: every secret in the config is blanked out of every reason. The model
itself, and all validation, is in gatekeeper/settings/ (``Settings`` in __init__.py, a module
per section).
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, SecretStr, ValidationError

from gatekeeper.errors import ConfigError
from gatekeeper.settings import ENV_PREFIX, OidcSettings, ProviderSettings, Settings

MAX_CONFIG_DEPTH = 32  # the deepest real key path is 5 levels (oidc.providers.0.scopes.0)
MAX_CONFIG_VALUES = 100_000  # far above any real file; bounds the walk of a YAML alias bomb
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


Loc = tuple[str, ...]


def _expand(node: Any, loc: Loc, environ: Mapping[str, str], problems: list[str],
            sources: dict[Loc, str]) -> Any:
    """${VAR} expanded in every string value; ``sources`` records which variables a value
    holds, so that a problem with it names them (never their values)."""
    if isinstance(node, dict):
        return {k: _expand(v, (*loc, str(k)), environ, problems, sources) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand(v, (*loc, str(i)), environ, problems, sources) for i, v in enumerate(node)]
    if isinstance(node, str):
        used: list[str] = []

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            used.append(f"${{{name}}}")
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            problems.append(f"{'.'.join(loc)}: environment variable {name} is not set")
            return ""

        expanded = _ENV_REF.sub(substitute, node)
        if used:
            sources[loc] = f"from {', '.join(dict.fromkeys(used))}"
        return expanded
    return node


def _format_error(error: Any, sources: Mapping[Loc, str], inline_oidc: bool,
                  secrets: list[str]) -> str:
    loc: Loc = tuple(str(part) for part in error["loc"])
    if inline_oidc and loc[:3] == ("oidc", "providers", "0"):
        loc = ("oidc", *loc[3:])  # the short form: the key as the user wrote it (oidc.issuer)
    message = str(error["msg"])
    if error["type"] == "invalid_key":  # the key itself is the last part: name where it sits
        key, loc = loc[-1], loc[:-1]
        message = (f"the key {key} is not text (YAML reads on, off, yes, no and numbers as "
                   "other types: quote it)")
    elif error["type"] == "extra_forbidden":
        message = "unknown key"
        close = difflib.get_close_matches(loc[-1], known_keys(loc[:-1]), n=1, cutoff=0.6)
        if close:
            message += f" (did you mean {close[0]}?)"
    # pydantic prefixes custom messages; the key path already says where.
    message = message.removeprefix("Value error, ")
    for secret in secrets:  # the key path is the user's own words and stays whole
        message = message.replace(secret, "***")
    source = next((text for prefix, text in sources.items() if loc[:len(prefix)] == prefix), None)
    if source is not None:
        message += f" ({source})"
    return f"{'.'.join(loc) or '(top level)'}: {message}"


def known_keys(loc: Loc) -> list[str]:
    """The keys a config file may give at ``loc`` (for "did you mean"); [] when not a mapping."""
    node: Any = Settings
    for part in loc:
        node = _unwrap(node)
        if isinstance(node, type) and issubclass(node, BaseModel):
            if part not in node.model_fields:
                return []
            node = node.model_fields[part].annotation
        elif get_origin(node) is list and part.isdigit():
            node = get_args(node)[0]
        elif get_origin(node) is dict:
            node = get_args(node)[1]
        else:
            return []
    node = _unwrap(node)
    if not (isinstance(node, type) and issubclass(node, BaseModel)):
        return []
    keys = list(node.model_fields)
    if node is OidcSettings:  # the short form: one provider's keys directly under oidc
        keys += [key for key in ProviderSettings.model_fields if key != "id"]
    return keys


def _unwrap(annotation: Any) -> Any:
    """``X | None`` → ``X``."""
    if get_origin(annotation) in (Union, UnionType):
        options = [arg for arg in get_args(annotation) if arg is not type(None)]
        return options[0] if len(options) == 1 else annotation
    return annotation


def _is_inline_oidc(data: Mapping[str, Any]) -> bool:
    oidc = data.get("oidc")
    return isinstance(oidc, dict) and "issuer" in oidc and "providers" not in oidc


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
    sources: dict[Loc, str] = {}
    expanded = _expand(raw, (), env, problems, sources)
    merged = _apply_env_overrides(expanded, env, sources)
    _check_shape(merged)
    # absolute(), not resolve(): in a ConfigMap volume the file is a symlink into a hidden
    # ..<timestamp>/ directory, and the policies sit next to the link, not its target.
    config_dir = None if path is None else Path(path).absolute().parent
    try:
        settings = Settings.model_validate(merged, context={"config_dir": config_dir})
    except ValidationError as exc:
        inline = _is_inline_oidc(merged)
        secrets = sorted((text for text in _secret_texts(merged, Settings)
                          if len(text) >= MIN_BLANKED_SECRET), key=len, reverse=True)
        problems.extend(_format_error(e, sources, inline, secrets)
                        for e in exc.errors(include_input=False))
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return settings


MIN_BLANKED_SECRET = 6  # shorter ones would blank common words out of messages; none is a secret


def _secret_texts(node: Any, annotation: Any) -> set[str]:
    """The secrets a config holds: values of SecretStr keys and the passwords in URLs, found by
    walking the data along the schema (the data may be invalid anywhere)."""
    annotation = _unwrap(annotation)
    if "SecretStr" in repr(annotation) and not _is_model(annotation):
        return _strings(node)
    found: set[str] = set()
    if _is_model(annotation) and isinstance(node, dict):
        fields = dict(annotation.model_fields)
        if annotation is OidcSettings:  # the short form: one provider's keys directly under oidc
            fields = {**ProviderSettings.model_fields, **fields}
        for key, value in node.items():
            name = str(key)
            if name.endswith(("url", "uri")) and isinstance(value, str):
                found |= _url_password(value)
            if name in fields:
                found |= _secret_texts(value, fields[name].annotation)
    elif get_origin(annotation) is list and isinstance(node, list):
        for item in node:
            found |= _secret_texts(item, get_args(annotation)[0])
    elif get_origin(annotation) is dict and isinstance(node, dict):
        for item in node.values():
            found |= _secret_texts(item, get_args(annotation)[1])
    return found


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _strings(node: Any) -> set[str]:
    if isinstance(node, str | SecretStr):
        return {node if isinstance(node, str) else node.get_secret_value()}
    if isinstance(node, list):
        return {text for item in node for text in _strings(item)}
    return set()


def _url_password(url: str) -> set[str]:
    try:
        password = urlsplit(url).password
    except ValueError:
        return set()
    return {password} if password else set()


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


def override_variables(environ: Mapping[str, str]) -> list[str]:
    """The GATEKEEPER_* variables that set config keys, sorted."""
    return sorted(name for name in environ if name.startswith(ENV_PREFIX)
                  and name != "GATEKEEPER_CONFIG" and not _SERVICE_LINK.fullmatch(name))


def _apply_env_overrides(data: dict[str, Any], environ: Mapping[str, str],
                         sources: dict[Loc, str]) -> dict[str, Any]:
    """GATEKEEPER_AUTH__LEEWAY_SECONDS=10 sets auth.leeway_seconds; JSON values for lists/maps.
    ``sources`` records which variable set which key path, so that a problem there names it."""
    merged = dict(data)
    for name in override_variables(environ):
        value = environ[name]
        keys = name[len(ENV_PREFIX) :].lower().split("__")
        overridden = tuple(keys)
        for loc in [loc for loc in sources if loc[:len(overridden)] == overridden]:
            del sources[loc]  # the file's value (and its ${VAR}s) is replaced
        sources[overridden] = f"set by the environment variable {name}"
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
