"""The policy page as HTML: a ``PageView`` in, one escaped document out. No I/O, no decisions.

Everything shown is escaped for its context (``html.escape(..., quote=True)``: text and quoted
attribute values alike): policy lines, subjects, paths, reasons and problems may all hold what an
attacker wrote — the recent denies list shows paths straight from the internet.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gatekeeper.ops.policy_assets import SCRIPT, STYLE
from gatekeeper.policy.history import ReloadEvent


@dataclass(frozen=True, slots=True)
class Cell:
    allowed: bool
    reason: str
    rule: str | None


@dataclass(frozen=True, slots=True)
class Matrix:
    columns: tuple[str, ...]  # "anonymous", "authenticated", then role names
    rows: tuple[tuple[str, str, tuple[Cell, ...]], ...]  # (method, path, a cell per column)
    more_roles: int = 0
    more_routes: int = 0


@dataclass(frozen=True, slots=True)
class Source:
    """One file as loaded: its numbered lines (at most a bound), or why it is not shown."""

    path: str
    anchor: str  # the id prefix of its lines: "model" → #model-L3
    lines: tuple[tuple[int, str], ...]
    more_lines: int = 0


@dataclass(frozen=True, slots=True)
class PageView:
    digest: str | None
    rules: int
    loaded_at: float | None
    last_error: str | None
    pid: int
    model: Source | None
    policy: Source | None
    sources_note: str | None  # why the files are not shown (changed since, unreadable)
    rule_lines: tuple[tuple[str, str], ...]  # (source, text): the rules, when files are not shown
    matrix: Matrix
    denies: tuple[Mapping[str, Any], ...]
    history: tuple[ReloadEvent, ...]
    public_paths: tuple[str, ...] = field(default=())


def e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _when(at: float | None) -> str:
    return "—" if at is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def render(view: PageView) -> str:
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        "<title>gatekeeper · policy</title>",
        f"<style>{STYLE}</style></head><body>",
        _header(view),
        "<main>",
        _try_form(),
        _matrix(view.matrix),
        _denies(view.denies),
        _history(view.history),
        _sources(view),
        "</main>",
        f"<script>{SCRIPT}</script></body></html>\n",
    ])


def _header(view: PageView) -> str:
    facts = [("digest", view.digest or "none"), ("rules", view.rules),
             ("loaded", _when(view.loaded_at)), ("worker pid", view.pid)]
    spans = "".join(f"<span>{e(name)} <b class=\"mono\" id=\"fact-{e(name.split()[0])}\">"
                    f"{e(value)}</b></span>" for name, value in facts)
    error = ("" if not view.last_error else
             f"<p class=\"warn\">The last reload was refused; the policy above keeps serving: "
             f"<span class=\"mono\">{e(view.last_error)}</span></p>")
    return (f"<header><h1>gatekeeper · policy in force</h1><div class=\"facts\">{spans}</div>"
            f"</header>{error}")


def _try_form() -> str:
    return """<section id="try-section"><h2>Try a request</h2>
<p class="muted">Decided by the policy in force, exactly as the proxy decides (the path is
canonicalized, the method upper-cased, <code>public_paths</code> and the roles claims apply).</p>
<form id="try" action="policy/explain" method="get">
<label for="sub">subject</label><input type="text" id="sub" name="sub" value="alice"
  autocomplete="off" spellcheck="false">
<label for="anonymous">anonymous</label><span><input type="checkbox" id="anonymous"
  name="anonymous" value="1"> no credentials (subject and roles ignored)</span>
<label for="role">roles</label><input type="text" id="role" name="role" autocomplete="off"
  spellcheck="false" placeholder="viewer, editor">
<span class="hint">token roles, comma-separated (they reach the policy as role:NAME)</span>
<label for="claim">claims</label><textarea id="claim" name="claim" spellcheck="false"
  placeholder="tenant=acme"></textarea>
<span class="hint">one NAME=VALUE a line; a value starting with [ or { is JSON</span>
<label for="method">method</label><input type="text" id="method" name="method" value="GET"
  autocomplete="off" spellcheck="false">
<label for="path">path</label><input type="text" id="path" name="path" value="/"
  autocomplete="off" spellcheck="false">
<button type="submit" id="decide">Decide</button>
</form>
<div id="result" aria-live="polite"><p class="muted">The decision and its explanation appear
here.</p></div></section>"""


def _cell(cell: Cell) -> str:
    kind = "allow" if cell.allowed else "deny"
    title = cell.reason + (f" ({cell.rule})" if cell.rule else "")
    mark = "✓ allow" if cell.allowed else "✗ deny"
    return f"<td class=\"{kind}\" title=\"{e(title)}\">{mark}</td>"


def _matrix(matrix: Matrix) -> str:
    head = "<section id=\"matrix-section\"><h2>Who can access what</h2>"
    if not matrix.rows:
        return (head + "<p class=\"muted\" id=\"matrix-empty\">No traffic yet: the routes of "
                "recent requests appear here, decided for every role.</p></section>")
    columns = "".join(f"<th class=\"mono\">{e(name)}</th>" for name in matrix.columns)
    rows = "".join(
        f"<tr><td class=\"mono\">{e(method)} {e(path)}</td>{''.join(_cell(c) for c in cells)}</tr>"
        for method, path, cells in matrix.rows)
    notes = []
    if matrix.more_routes:
        notes.append(f"{matrix.more_routes} more routes not shown")
    if matrix.more_roles:
        notes.append(f"{matrix.more_roles} more roles not shown")
    note = f"<p class=\"muted\">{e('; '.join(notes))}.</p>" if notes else ""
    return (head + "<p class=\"muted\">Routes seen in recent traffic (newest first) by roles, "
            "decided now by the policy in force for a caller holding only that token role "
            "(no claims). <b>anonymous</b>: no credentials; <b>authenticated</b>: a token "
            "without roles. Hover a cell for the reason and rule.</p>"
            f"<table id=\"matrix\"><thead><tr><th>route</th>{columns}</tr></thead>"
            f"<tbody>{rows}</tbody></table>{note}</section>")


def _denies(denies: Sequence[Mapping[str, Any]]) -> str:
    head = "<section id=\"denies-section\"><h2>Recent denies</h2>"
    if not denies:
        return head + "<p class=\"muted\" id=\"denies-empty\">No request denied yet.</p></section>"
    rows = []
    for entry in denies:
        subject = str(entry.get("subject", ""))
        method, path = str(entry.get("method", "")), str(entry.get("path", ""))
        rule = entry.get("rule")
        rows.append(
            f"<tr><td class=\"mono\">{e(entry.get('time', ''))}</td>"
            f"<td>{e(entry.get('status', ''))}</td>"
            f"<td class=\"mono\">{e(subject)}</td>"
            f"<td class=\"mono\">{e(method)} {e(path)}</td>"
            f"<td class=\"mono\">{e(entry.get('reason', ''))}"
            f"{'' if not rule else ' (' + e(rule) + ')'}</td>"
            f"<td><button type=\"button\" class=\"retry\" data-sub=\"{e(subject)}\" "
            f"data-method=\"{e(method)}\" data-path=\"{e(path)}\">try</button></td></tr>")
    return (head + "<table id=\"denies\"><thead><tr><th>time</th><th>status</th><th>subject</th>"
            "<th>request</th><th>reason</th><th></th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></section>")


def _history(events: Iterable[ReloadEvent]) -> str:
    rows = []
    for event in events:
        problems = "".join(f"<div class=\"mono\">{e(p)}</div>" for p in event.problems)
        if event.more_problems:
            problems += f"<div class=\"muted\">… {event.more_problems} more</div>"
        rows.append(
            f"<tr><td class=\"mono\">{e(_when(event.at))}</td><td>{e(event.reason)}</td>"
            f"<td class=\"{e(event.result)}\">{e(event.result)}</td>"
            f"<td class=\"mono\">{e(event.digest or '—')}</td>"
            f"<td>{e('' if event.rules is None else event.rules)}</td><td>{problems}</td></tr>")
    return ("<section id=\"history-section\"><h2>Reload history</h2>"
            "<table id=\"history\"><thead><tr><th>time</th><th>why</th><th>result</th>"
            "<th>serving digest</th><th>rules</th><th>problems</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></section>")


def _source(source: Source, title: str) -> str:
    lines = "".join(
        f"<tr id=\"{e(source.anchor)}-L{number}\"><td class=\"n mono\">{number}</td>"
        f"<td class=\"mono\">{e(text)}</td></tr>" for number, text in source.lines)
    more = (f"<p class=\"muted\">… {source.more_lines} more lines not shown.</p>"
            if source.more_lines else "")
    return (f"<h3>{e(title)} <span class=\"mono muted\">{e(source.path)}</span></h3>"
            f"<div class=\"source\" id=\"{e(source.anchor)}\"><table>{lines}</table></div>{more}")


def _sources(view: PageView) -> str:
    parts = ["<section id=\"sources-section\"><h2>Model and rules</h2>"]
    if view.sources_note:
        parts.append(f"<p class=\"warn\">{e(view.sources_note)}</p>")
    if view.model is not None and view.policy is not None:
        parts.append(_source(view.model, "Model"))
        parts.append(_source(view.policy, "Policy"))
    elif view.rule_lines:
        rows = "".join(f"<tr><td class=\"mono\">{e(where)}</td><td class=\"mono\">{e(text)}</td></tr>"
                       for where, text in view.rule_lines)
        parts.append(f"<table id=\"rules\"><tbody>{rows}</tbody></table>")
    if view.public_paths:
        paths = ", ".join(f"<code>{e(p)}</code>" for p in view.public_paths)
        parts.append(f"<p>public_paths (anonymous callers reach the policy only here): {paths}</p>")
    parts.append("</section>")
    return "".join(parts)
