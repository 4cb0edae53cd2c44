"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from tests.conftest import Azurite, RunningApp


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
