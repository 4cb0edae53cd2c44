"""Fixtures of the browser tests: the local host with the sandbox panel, and headless Chromium.

The browser is Debian's Chromium (`apt-get install chromium`), driven by Python Playwright through
`executable_path`; Playwright's own browser download is never used (it cannot download here).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, Response, sync_playwright

from localdev.host import LocalHost
from shared.app.bootstrap import build_context, set_context
from shared.context import AppContext
from shared.core.settings import load_settings
from tests.conftest import SEEN

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
INSTALL_HINT = (
    "Chromium is needed for the browser tests and was not found. Install Debian's package, as "
    "root: `apt-get update && apt-get install -y chromium` (or point CHROMIUM_PATH at a "
    "Chromium binary). Do not run `playwright install`: its download is not used."
)


@dataclass
class PortalHost:
    """The local host serving the portal page, the app, and the sandbox admin proxy."""

    url: str
    host: LocalHost
    context: AppContext


@pytest.fixture
def portal_host(
    sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PortalHost]:
    """Like `sandboxed_app`, but the LocalHost also proxies `/sandbox/admin/*` to the sandbox;
    its port is taken first so that OIDC_ISSUER is the host's own URL + `/api/oidc` (as under
    `make run`): the sandbox tenant fetches the issuer's documents from the app over loopback
    HTTP, which federated credentials need."""
    sandbox.reset()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sandbox.ca_bundle_path)
    host = LocalHost(sandbox_url=sandbox.base_url, sandbox_ca=sandbox.ca_bundle_path)
    host.bind()
    values = {
        "AUTH_MODE": "local",
        "LOCAL_STATE_DIR": str(tmp_path / "state"),
        "ENTRA_AUTHORITY_HOST": sandbox.base_url,
        "GRAPH_ENDPOINT": sandbox.base_url,
        "OIDC_ISSUER": host.issuer_url(),
    }
    try:
        context = build_context(load_settings(values))
        set_context(context)
        url = host.start()
        yield PortalHost(url, host, context)
    finally:
        host.stop()
        set_context(None)


def chromium_executable() -> str:
    candidates = [os.environ.get("CHROMIUM_PATH", ""), "/usr/bin/chromium"]
    candidates += [shutil.which(name) or "" for name in ("chromium", "chromium-browser")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(INSTALL_HINT, pytrace=False)


@contextmanager
def chromium_page(tmp_path: Path) -> Iterator[Page]:
    """A page of headless Chromium with a fresh profile in tmp_path; downloads are accepted.

    A context manager, not a fixture, so that a missing Chromium fails the test itself (with the
    install hint) instead of erroring in set-up. The page's API answers are added to the run's
    record (see tests/zz_final).
    """
    executable = chromium_executable()
    api_responses: list[Response] = []
    with sync_playwright() as driver:
        context = driver.chromium.launch_persistent_context(
            user_data_dir=str(tmp_path / "chromium-profile"),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
            accept_downloads=True,
            downloads_path=str(tmp_path / "downloads"),
            viewport={"width": 1280, "height": 900},
            locale="en-GB",
            timezone_id="UTC",
        )
        try:
            context.set_default_timeout(20_000)
            page = context.pages[0] if context.pages else context.new_page()
            page.on("response", lambda r: api_responses.append(r) if "/api/" in r.url else None)
            yield page
        finally:
            for response in api_responses:
                try:
                    body = response.body()
                except Exception:  # a download or an evicted body: its headers still count
                    body = b""
                SEEN.responses.append((response.url, response.status, dict(response.headers), body))
            context.close()
