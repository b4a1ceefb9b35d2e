"""A real headless Chromium (Debian's ``chromium`` package) driven by Playwright for Python.

    with chromium_page() as page:
        page.goto(url)
        page.fill("input[name=username]", "alice")

Playwright never downloads a browser here (no ``playwright install``): it drives Debian's
chromium, which ``.ci/run`` installs with apt-get, found on ``PATH`` or named by ``CHROMIUM_BIN``
(tests/support/tools.py). Each call starts a new browser with an empty profile.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Sequence

from playwright.sync_api import Page, sync_playwright

from tests.support.tools import CHROMIUM, require

__all__ = ["CHROMIUM_FLAGS", "chromium_page"]

# Headless on a machine without a network beyond loopback: no sandbox (root in a container), no GPU,
# and none of the background traffic to Google's hosts (refused here, slow at every start).
CHROMIUM_FLAGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@contextlib.contextmanager
def chromium_page(
    *,
    executable_path: str | None = None,
    extra_args: Sequence[str] = (),
    timeout_ms: float = 10_000,
) -> Iterator[Page]:
    """Launch Chromium headless with a fresh user-data-dir; yield its page; close it all on exit.

    ``timeout_ms`` is Playwright's default for every wait and navigation of the page: a bound on
    how long a broken test hangs, not something a test asserts on. Without ``executable_path``,
    the chromium found on this machine (or the test fails naming the package to install).
    """
    if executable_path is None:
        executable_path = require(CHROMIUM)
    with (
        tempfile.TemporaryDirectory(prefix="gatekeeper-chromium-") as profile,
        sync_playwright() as playwright,
    ):
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=executable_path,
            headless=True,
            args=[*CHROMIUM_FLAGS, *extra_args],
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(timeout_ms)
            page.set_default_navigation_timeout(timeout_ms)
            yield page
        finally:
            context.close()
