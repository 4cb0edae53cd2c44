"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from localdev.host import LocalHost
from shared.app.bootstrap import build_context, set_context
from shared.core.settings import load_settings
from tests.conftest import Azurite, RunningApp, _remember_tokens, api_session


@pytest.fixture
def start_app(tmp_path: Path) -> Iterator[Callable[..., RunningApp]]:
    """Start the local host with the app built from the given settings (defaults: local mode),
    as tests/conftest.py's fixture does, but with the host's port taken first: OIDC_ISSUER is
    then the host's own URL + `/api/oidc` unless a test sets it, as under `make run`, since the
    sandbox tenant fetches the issuer's documents from the app over loopback HTTP."""
    running: list[RunningApp] = []

    def start(env: Mapping[str, str] | None = None, **context_options: Any) -> RunningApp:
        host = LocalHost()
        host.bind()
        # Every account due at every timer run, unless a test sets the interval: most tests of
        # the timer are about what a verification does, not about when it is due.
        values = {
            "AUTH_MODE": "local",
            "LOCAL_STATE_DIR": str(tmp_path / "state"),
            "HEALTH_CHECK_INTERVAL_HOURS": "0",
            "OIDC_ISSUER": host.issuer_url(),
        }
        values.update(env or {})
        try:
            context = build_context(load_settings(values), **context_options)
        except BaseException:
            host.stop()
            raise
        context.http.hooks["response"].append(_remember_tokens)
        set_context(context)
        url = host.start()
        app = RunningApp(url, context, api_session(), host)
        running.append(app)
        return app

    yield start
    for app in running:
        app.host.stop()
    set_context(None)


@pytest.fixture(params=["sqlite", "table"])
def app(request: pytest.FixtureRequest, start_app: Callable[..., RunningApp]) -> RunningApp:
    """The local host on each account store: SQLite, and Table Storage (Azurite, a fresh table).

    A module that needs another app (the sandbox, Key Vault) defines its own `app` fixture."""
    if request.param == "sqlite":
        return start_app()
    azurite: Azurite = request.getfixturevalue("azurite")
    return start_app(
        {
            "ACCOUNTS_STORAGE": azurite.connection_string,
            "ACCOUNTS_TABLE_NAME": "t" + uuid.uuid4().hex[:16],
        }
    )
