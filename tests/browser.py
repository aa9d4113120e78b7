"""Browser tests drive Debian's Chromium (installed by `make test`) through Playwright's Python
package, never a downloaded browser. A pytest plugin: the `browser` fixture, one per test module."""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM = os.environ.get("SANDBOX_CHROMIUM", "/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"needs Chromium at {CHROMIUM}")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()
