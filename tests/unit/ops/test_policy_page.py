"""ops/policy_page.py: /policy/explain decides as the proxy does; /policy shows the policy in
force, its matrix, the recent denies and the reload history — with everything attacker-written
inert (escaped), under a strict CSP."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Coroutine
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from gatekeeper.ops.policy_assets import SCRIPT, STYLE
from gatekeeper.ops.policy_page import MAX_EXPLAINED_RULES
from tests.support.admin import PolicyAdmin, policy_admin
from tests.support.fakes import run
from tests.support.policy import POLICIES

T = TypeVar("T")
DEFAULT = (POLICIES / "policy.csv").read_text()
HOSTILE_RULE = "p, role:viewer, /a<script>alert(1)</script>, GET, allow\n"
HOSTILE_SUBJECT = '"><img src=x onerror=alert(2)>'
HOSTILE_PATH = "/x/<script>alert(3)</script>"


def line_of(text: str, rule: str) -> int:
    return text.splitlines().index(rule) + 1


def with_page(tmp_path: Path, scenario: Callable[[PolicyAdmin], Coroutine[Any, Any, T]],
              policy: str = DEFAULT) -> T:
    async def go() -> T:
        async with policy_admin(tmp_path, policy) as page:
            return await scenario(page)
    return run(go())


def explain(tmp_path: Path, *params: tuple[str, str]) -> httpx.Response:
    async def scenario(page: PolicyAdmin) -> httpx.Response:
        return await page.get("/policy/explain", params=tuple(params))
    return with_page(tmp_path, scenario)


# -- /policy/explain ----------------------------------------------------------------------------

@pytest.mark.parametrize(("params", "allowed", "reason", "rule"), [
    ([("sub", "ann"), ("role", "viewer"), ("method", "GET"), ("path", "/api/p1/items")],
     True, "policy_allow", "p, role:viewer, /api/:project/items, GET|HEAD, allow"),
    ([("sub", "ann"), ("role", "admin"), ("method", "DELETE"), ("path", "/api/p1/items/audit")],
     False, "policy_deny", "p, role:authenticated, /api/:project/items/audit, DELETE, deny"),
    ([("sub", "ann"), ("role", "editor"), ("method", "post"), ("path", "/api/p1/items")],
     True, "policy_allow", "p, role:editor, /api/:project/items, POST, allow"),
    ([("sub", "ann"), ("role", "viewer, editor"), ("method", "POST"), ("path", "/api/p1/items")],
     True, "policy_allow", "p, role:editor, /api/:project/items, POST, allow"),
    ([("sub", "ann"), ("claim", 'roles=["editor"]'), ("method", "POST"), ("path", "/api/p1/items")],
     True, "policy_allow", "p, role:editor, /api/:project/items, POST, allow"),
    ([("sub", "eve"), ("role", "editor"), ("method", "GET"), ("path", "/public/../admin/users")],
     False, "no_matching_rule", None),
    ([("anonymous", "1"), ("method", "GET"), ("path", "/public/logo.png")],
     True, "policy_allow", "p, role:anonymous, /public/*, GET|HEAD, allow"),
    ([("anonymous", "1"), ("method", "GET"), ("path", "/api/me")],
     False, "no_credentials", None),
    ([("sub", "role:admin"), ("method", "GET"), ("path", "/admin/x")],
     False, "subject_names_a_role", None),
], ids=["a viewer reads items", "a deny wins over the admin's allow",
        "a lower-case method is decided upper-case", "roles may be comma-separated",
        "roles also come from the roles claims", "a dot segment is decided on the canonical path",
        "an anonymous caller reads a public path", "an anonymous caller gets nothing else",
        "a subject that names a role is refused"])
def test_explain_decides_as_the_proxy_does(tmp_path: Path, params: list[tuple[str, str]],
                                           allowed: bool, reason: str, rule: str | None) -> None:
    response = explain(tmp_path, *params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["allowed"], body["reason"], body["rule_text"]) == (allowed, reason, rule)
    if rule is not None:
        assert body["rule"] == f"policy.csv:{line_of(DEFAULT, rule)}"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_explain_reports_the_canonical_request_and_the_subjects(tmp_path: Path) -> None:
    body = explain(tmp_path, ("sub", "ann"), ("role", "admin"), ("method", "get"),
                   ("path", "/public/../admin/users?x=1")).json()
    assert body["request"]["method"] == "GET" and body["request"]["path"] == "/admin/users"
    assert {"ann", "role:admin", "role:editor", "role:viewer", "role:authenticated"} <= set(
        body["subjects"])
    assert body["allowed"] is True


@pytest.mark.parametrize(("params", "names"), [
    ([("sub", "a"), ("path", "/"), ("colour", "red")], "colour"),
    ([("sub", "a"), ("method", "G ET")], "method"),
    ([("sub", "a"), ("path", "admin")], "path"),
    ([("sub", "a"), ("path", "/%2e%2e/%2e%2e/etc")], "path"),
    ([("path", "/")], "sub"),
    ([("sub", "a"), ("claim", "tenant")], "claim"),
    ([("sub", "a"), ("claim", "tenant={not json")], "claim"),
    ([("sub", "a"), ("method", "GET"), ("method", "POST")], "method"),
    ([("sub", "a"), ("path", "/" + "x" * 9000)], "path"),
    ([("sub", "a"), ("host", "a.example, b.example")], "host"),
    ([("sub", "a"), ("host", "a.example/x")], "host"),
    ([("sub", "a"), ("client", "10.0.0.0/8")], "client"),
    ([("sub", "a"), ("client", "localhost")], "client"),
], ids=["an unknown parameter", "a method that is not a token", "a path without a slash",
        "a target the proxy refuses with 400", "no subject and not anonymous",
        "a claim without a value", "a claim that is not JSON", "two methods", "a huge value",
        "two hosts", "a host with a path", "a network for a client", "a name for a client"])
def test_a_bad_query_is_a_400_naming_the_parameter(tmp_path: Path, params: list[tuple[str, str]],
                                                    names: str) -> None:
    response = explain(tmp_path, *params)
    assert response.status_code == 400
    assert response.json()["error_description"].startswith(names), response.json()


# -- /policy ----------------------------------------------------------------------------------

class Document(HTMLParser):
    """Every start tag with its attributes, and the text of each element by id."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text += data


def parse(html: str) -> Document:
    document = Document()
    document.feed(html)
    document.close()
    return document


def cells(html: str, table_id: str) -> list[list[str]]:
    """The text of each row's cells in the table ``table_id`` (header row included)."""
    table = re.search(rf'<table id="{table_id}">(.*?)</table>', html, re.S)
    assert table, f"no table {table_id}"
    return [[parse(cell).text for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S)]


def page_of(tmp_path: Path, policy: str = DEFAULT,
            before: Callable[[PolicyAdmin], Coroutine[Any, Any, None]] | None = None
            ) -> httpx.Response:
    async def scenario(page: PolicyAdmin) -> httpx.Response:
        if before is not None:
            await before(page)
        return await page.get("/policy")
    return with_page(tmp_path, scenario, policy)


def sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_the_page_runs_only_its_own_inline_script_and_style(tmp_path: Path) -> None:
    response = page_of(tmp_path)
    csp = response.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == sha256(SCRIPT)
    assert directives["style-src"] == sha256(STYLE)
    assert directives["frame-ancestors"] == "'none'"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"
    # The blocks the hashes name are the ones on the page, byte for byte.
    assert f"<script>{SCRIPT}</script>" in response.text and f"<style>{STYLE}</style>" in response.text
    document = parse(response.text)
    assert [tag for tag, _ in document.tags if tag == "script"] == ["script"]
    assert not [tag for tag, attrs in document.tags if "src" in attrs or tag == "link"]


def test_attacker_written_rules_subjects_and_paths_are_shown_as_text(tmp_path: Path) -> None:
    async def deny(page: PolicyAdmin) -> None:
        page.traffic.denied({"method": "GET", "path": HOSTILE_PATH, "status": 403,
                             "subject": HOSTILE_SUBJECT, "decision": "unauthorized",
                             "reason": "no_matching_rule", "rule": None})
        page.traffic.route("GET", HOSTILE_PATH)

    response = page_of(tmp_path, DEFAULT + HOSTILE_RULE, before=deny)
    document = parse(response.text)
    # Inert: our one script, no image, no event handler anywhere.
    assert [tag for tag, _ in document.tags if tag == "script"] == ["script"]
    assert not [tag for tag, _ in document.tags if tag == "img"]
    assert not [name for _, attrs in document.tags for name in attrs if name.startswith("on")]
    # And still shown, as the text it is.
    for text in (HOSTILE_SUBJECT, HOSTILE_PATH, "/a<script>alert(1)</script>"):
        assert text in document.text
    retry = next(attrs for tag, attrs in document.tags if tag == "button" and "data-sub" in attrs)
    assert (retry["data-sub"], retry["data-path"]) == (HOSTILE_SUBJECT, HOSTILE_PATH)


def test_the_matrix_is_decided_by_the_policy_in_force_for_the_routes_seen(tmp_path: Path) -> None:
    async def traffic(page: PolicyAdmin) -> None:
        for method, path in [("GET", "/public/logo.png"), ("GET", "/api/p1/items"),
                             ("POST", "/api/p1/items"), ("GET", "/admin/users"),
                             ("DELETE", "/api/p1/items/audit")]:
            page.traffic.route(method, path)

    rows = cells(page_of(tmp_path, before=traffic).text, "matrix")
    header, body = rows[0], {row[0]: row[1:] for row in rows[1:]}
    assert header == ["route", "anonymous", "authenticated", "admin", "editor", "viewer"]
    allow, deny = "✓ allow", "✗ deny"
    assert body == {  # newest first; admin ⊃ editor ⊃ viewer by the g lines
        "DELETE /api/p1/items/audit": [deny, deny, deny, deny, deny],
        "GET /admin/users": [deny, deny, allow, deny, deny],
        "POST /api/p1/items": [deny, deny, allow, allow, deny],
        "GET /api/p1/items": [deny, deny, allow, allow, allow],
        "GET /public/logo.png": [allow, allow, allow, allow, allow],
    }
    assert list(body) == ["DELETE /api/p1/items/audit", "GET /admin/users", "POST /api/p1/items",
                          "GET /api/p1/items", "GET /public/logo.png"]


def test_the_matrix_follows_a_reload(tmp_path: Path) -> None:
    async def reload(page: PolicyAdmin) -> None:
        page.traffic.route("GET", "/admin/users")
        page.policy_file.write_text("p, role:auditor, /admin/*, GET, allow\n")
        assert await page.holder.reload("test")

    rows = cells(page_of(tmp_path, before=reload).text, "matrix")
    assert rows[0] == ["route", "anonymous", "authenticated", "auditor"]
    assert rows[1] == ["GET /admin/users", "✗ deny", "✗ deny", "✓ allow"]


def test_the_files_are_shown_with_their_line_numbers(tmp_path: Path) -> None:
    html = page_of(tmp_path).text
    number = line_of(DEFAULT, "p, role:admin, /admin/*, *, allow")
    row = re.search(rf'<tr id="policy-L{number}">(.*?)</tr>', html, re.S)
    assert row and parse(row.group(1)).text == f"{number}p, role:admin, /admin/*, *, allow"
    model = (POLICIES / "model.conf").read_text()
    number = line_of(model, "[matchers]") + 1
    row = re.search(rf'<tr id="model-L{number}">(.*?)</tr>', html, re.S)
    assert row and "keyMatch2(r.obj, p.obj)" in parse(row.group(1)).text


def test_files_changed_since_the_load_are_not_passed_off_as_the_policy_in_force(
        tmp_path: Path) -> None:
    async def edit(page: PolicyAdmin) -> None:
        page.policy_file.write_text("p, role:nobody, /elsewhere, GET, allow\n")  # not reloaded

    html = page_of(tmp_path, before=edit).text
    assert "not the policy in force" in html
    assert "/elsewhere" not in html
    rules = cells(html, "rules")
    assert [f"policy.csv:{line_of(DEFAULT, 'p, role:admin, /admin/*, *, allow')}",
            "p, role:admin, /admin/*, *, allow"] in rules


def test_the_reload_history_shows_loads_and_refusals_with_their_problems(tmp_path: Path) -> None:
    async def refuse(page: PolicyAdmin) -> None:
        page.policy_file.write_text(DEFAULT + "p, role:viewer, /x, GET, Deny\n")
        assert not await page.holder.reload("file change")

    html = page_of(tmp_path, before=refuse).text
    rows = cells(html, "history")
    assert [row[1:3] for row in rows[1:]] == [["file change", "refused"], ["startup", "loaded"]]
    assert f"policy.csv:{len(DEFAULT.splitlines()) + 1}" in rows[1][5]
    assert "The last reload was refused" in html


def test_the_page_says_when_nothing_was_denied_or_seen_yet(tmp_path: Path) -> None:
    html = page_of(tmp_path).text
    assert 'id="denies-empty"' in html and 'id="matrix-empty"' in html


# -- the explanation (policy/explain.py) on /policy/explain --------------------------------------

def test_an_allow_is_explained_by_the_rules_that_matched_and_where_the_roles_came_from(
        tmp_path: Path) -> None:
    body = explain(tmp_path, ("sub", "ann"), ("role", "admin"), ("method", "POST"),
                   ("path", "/api/p1/items")).json()
    explanation = body["explanation"]
    assert explanation["allowed"] is True and explanation["decided_by"] == body["rule"]
    assert {"rule": body["rule"], "text": body["rule_text"], "effect": "allow"} in (
        explanation["matched"])
    editor = next(s for s in explanation["subjects"] if s["name"] == "role:editor")
    assert editor["chain"] == ["role:admin", "role:editor"]
    assert editor["via"] == f"g line policy.csv:{line_of(DEFAULT, 'g, role:admin, role:editor')}"


def test_a_deny_is_explained_by_the_nearest_rules_and_the_term_that_failed(tmp_path: Path) -> None:
    body = explain(tmp_path, ("sub", "vera"), ("role", "viewer"), ("method", "GET"),
                   ("path", "/admin/users")).json()
    explanation = body["explanation"]
    assert (body["allowed"], explanation["allowed"], explanation["matched"]) == (False, False, [])
    admin = next(n for n in explanation["nearest"] if n["text"] == "p, role:admin, /admin/*, *, allow")
    assert admin["term"] == "g(r.sub, p.sub)" and admin["result"] == "false"


def test_a_policy_too_large_to_explain_on_the_event_loop_still_gets_its_decision(
        tmp_path: Path) -> None:
    many = "".join(f"p, role:r{n}, /u/{n}, GET, allow\n" for n in range(MAX_EXPLAINED_RULES + 1))

    async def scenario(page: PolicyAdmin) -> httpx.Response:
        return await page.get("/policy/explain", params=(("sub", "ann"), ("role", "r7"),
                                                             ("path", "/u/7")))

    body = with_page(tmp_path, scenario, many).json()
    assert (body["allowed"], body["rule"]) == (True, "policy.csv:8")
    assert body["explanation"] is None
    assert "gatekeeper policy explain" in body["explanation_note"]


@pytest.mark.parametrize(("target", "allowed"), [
    ("/documents?owner=ann", True), ("/documents?owner=bob", False), ("/documents", False),
], ids=["her own documents", "another owner's", "no owner named"])
def test_explain_reads_the_query_as_the_proxy_does(tmp_path: Path, target: str,
                                                    allowed: bool) -> None:
    """The shipped ABAC example reads r.obj.Owner from the query: the page's decision is the
    proxy's for the same target (it once decided without the query: always a deny)."""
    async def scenario(page: PolicyAdmin) -> httpx.Response:
        return await page.get("/policy/explain", params=(("sub", "ann"), ("path", target)))

    body = run(_abac(tmp_path, scenario)).json()
    assert (body["allowed"], body["explanation"]["allowed"]) == (allowed, allowed)
    assert body["request"]["target"] == target


async def _abac(tmp_path: Path, scenario: Callable[[PolicyAdmin], Coroutine[Any, Any, T]]) -> T:
    policy = (POLICIES / "abac-documents.policy.csv").read_text()
    async with policy_admin(tmp_path, policy, model=POLICIES / "abac-documents.model.conf") as page:
        return await scenario(page)
