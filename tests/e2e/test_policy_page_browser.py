"""The policy page in a real headless Chromium, over a running gatekeeper and real traffic: the
page loads under its CSP without a violation, the form shows an allow and a deny with their
explanation, the matrix is coloured by the policy in force, the recent denies are listed — a
hostile subject among them, shown as text and never run.

``GK_WRITE_SCREENSHOTS=1`` also writes the screenshots in docs/images/ that docs/policy-page.md
shows (checked in; without it nothing is written and nothing is compared pixel by pixel).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import ConsoleMessage, Page

from gatekeeper.dev.issuer import DevIssuer
from tests.conftest import Gatekeeper
from tests.support.browser import chromium_page
from tests.support.fakes import mint
from tests.support.paths import ROOT
from tests.support.policy import copy_default_policy

IMAGES = ROOT / "docs" / "images"
WRITE_SCREENSHOTS = os.environ.get("GK_WRITE_SCREENSHOTS") == "1"
HOSTILE_SUBJECT = "<img src=x onerror=window.__pwned=1>"
ALLOW_BG, DENY_BG = "rgb(218, 251, 225)", "rgb(255, 235, 233)"  # --allow-bg, --deny-bg


@pytest.fixture(scope="module")
def gk(gatekeeper_factory: Callable[..., Gatekeeper], issuer: DevIssuer,
       tmp_path_factory: pytest.TempPathFactory) -> Gatekeeper:
    policy = copy_default_policy(tmp_path_factory.mktemp("policy"))
    gk = gatekeeper_factory(policy={**policy, "watch": False}, public_paths=["/public/*"])
    traffic = [  # (subject or None, roles, method, path)
        ("vera", ["viewer"], "GET", "/api/p1/items"),
        ("vera", ["viewer"], "GET", "/api/p1/items/42"),
        ("ed", ["editor"], "POST", "/api/p1/items"),
        ("vera", ["viewer"], "POST", "/api/p1/items"),
        ("ada", ["admin"], "GET", "/admin/users"),
        ("vera", ["viewer"], "GET", "/admin/users"),
        ("ada", ["admin"], "DELETE", "/api/p1/items/audit"),
        (None, [], "GET", "/public/logo.png"),
        (None, [], "GET", "/api/me"),
        (HOSTILE_SUBJECT, [], "GET", "/admin/<script>window.__pwned=2</script>"),
    ]
    with gk.client() as client:
        for subject, roles, method, path in traffic:
            headers = {} if subject is None else {
                "Authorization": "Bearer " + mint(issuer, subject, claims={"roles": roles})}
            client.request(method, path, headers=headers)
    return gk


@pytest.fixture(scope="module")
def page(gk: Gatekeeper) -> Iterator[tuple[Page, list[str]]]:
    problems: list[str] = []
    with chromium_page() as browser_page:
        browser_page.set_viewport_size({"width": 1360, "height": 900})

        def on_console(message: ConsoleMessage) -> None:
            if message.type in ("error", "warning"):
                problems.append(message.text)

        browser_page.on("console", on_console)
        browser_page.on("pageerror", lambda error: problems.append(str(error)))
        browser_page.goto(gk.admin_url + "/policy")
        yield browser_page, problems


def decide(page: Page, *, sub: str, roles: str, method: str, path: str) -> str:
    page.fill("#sub", sub)
    page.fill("#role", roles)
    page.fill("#claim", "")
    page.fill("#method", method)
    page.fill("#path", path)
    page.click("#decide")
    page.wait_for_function("""expected => {
        const verdict = document.querySelector('#verdict');
        return verdict !== null && verdict.textContent.endsWith(expected);
    }""", arg=f"{method} {path}")
    return page.inner_text("#result")


def shoot(page: Page, selector: str | None, name: str) -> None:
    if not WRITE_SCREENSHOTS:
        return
    IMAGES.mkdir(parents=True, exist_ok=True)
    if selector is None:
        page.screenshot(path=str(IMAGES / name), full_page=True)
    else:
        page.locator(selector).screenshot(path=str(IMAGES / name))


def test_the_page_loads_under_its_csp_without_a_violation(page: tuple[Page, list[str]]) -> None:
    browser_page, problems = page
    assert browser_page.title() == "gatekeeper · policy"
    # The stylesheet applied (its hash is in the CSP), and the script ran (it handles the form).
    header = browser_page.eval_on_selector("header", "h => getComputedStyle(h).backgroundColor")
    assert header == "rgb(36, 41, 47)"
    assert problems == []


def test_the_form_shows_an_allow_and_a_deny_with_the_explanation(
        page: tuple[Page, list[str]]) -> None:
    browser_page, problems = page
    allowed = decide(browser_page, sub="ann", roles="viewer", method="GET", path="/api/p1/items")
    assert "ALLOW" in allowed and "policy_allow" in allowed
    assert "p, role:viewer, /api/:project/items, GET|HEAD, allow" in allowed
    assert "Rules that matched" in allowed and "role:viewer (token role)" in allowed
    assert browser_page.eval_on_selector(
        "#verdict .badge", "b => getComputedStyle(b).backgroundColor") == ALLOW_BG
    denied = decide(browser_page, sub="ann", roles="admin", method="DELETE",
                    path="/api/p1/items/audit")
    assert "DENY" in denied and "policy_deny" in denied
    assert "p, role:authenticated, /api/:project/items/audit, DELETE, deny" in denied
    assert "role:admin" in denied and "role:authenticated" in denied  # the subjects held
    assert "role:editor (g line policy.csv:" in denied  # where an inherited role came from
    nearest = decide(browser_page, sub="vera", roles="viewer", method="GET", path="/admin/users")
    assert "DENY" in nearest and "Nearest rules that did not match" in nearest
    assert "p, role:admin, /admin/*, *, allow" in nearest and "failed at: g(r.sub, p.sub)" in nearest
    assert browser_page.eval_on_selector(
        "#verdict .badge", "b => getComputedStyle(b).backgroundColor") == DENY_BG
    shoot(browser_page, "#try-section", "policy-page-try.png")
    assert problems == []


def test_the_matrix_is_coloured_by_the_policy_in_force(page: tuple[Page, list[str]]) -> None:
    browser_page, _ = page
    columns = browser_page.eval_on_selector_all("#matrix thead th", "ths => ths.map(t => t.textContent)")
    assert columns == ["route", "anonymous", "authenticated", "admin", "editor", "viewer"]
    rows = browser_page.eval_on_selector_all("#matrix tbody tr", """rows => rows.map(r => [
        r.cells[0].textContent,
        Array.from(r.cells).slice(1).map(c => getComputedStyle(c).backgroundColor)])""")
    colours = dict((route, cells) for route, cells in rows)
    allow, deny = ALLOW_BG, DENY_BG
    assert colours["GET /admin/users"] == [deny, deny, allow, deny, deny]
    assert colours["POST /api/p1/items"] == [deny, deny, allow, allow, deny]
    assert colours["GET /public/logo.png"] == [allow] * 5
    assert colours["DELETE /api/p1/items/audit"] == [deny] * 5
    shoot(browser_page, "#matrix-section", "policy-page-matrix.png")


def test_the_recent_denies_are_listed_and_a_hostile_subject_is_only_text(
        page: tuple[Page, list[str]]) -> None:
    browser_page, problems = page
    rows = browser_page.eval_on_selector_all(
        "#denies tbody tr", "rows => rows.map(r => Array.from(r.cells).map(c => c.textContent))")
    subjects = [row[2] for row in rows]
    assert HOSTILE_SUBJECT in subjects and "vera" in subjects and "anonymous" in subjects
    vera = next(row for row in rows if row[2] == "vera" and "/admin/users" in row[3])
    assert vera[1] == "403" and "no_matching_rule" in vera[4]
    assert browser_page.evaluate("typeof window.__pwned") == "undefined"
    assert browser_page.eval_on_selector_all("#denies img", "imgs => imgs.length") == 0
    # "try" puts a deny back into the form and decides it again.
    browser_page.locator("#denies tbody tr", has_text="ada").locator("button.retry").click()
    browser_page.wait_for_function("""() => {
        const verdict = document.querySelector('#verdict');
        return verdict !== null && verdict.textContent.endsWith('DELETE /api/p1/items/audit');
    }""")
    assert "DENY" in browser_page.inner_text("#result")
    assert browser_page.input_value("#sub") == "ada"
    shoot(browser_page, None, "policy-page.png")
    assert problems == []
