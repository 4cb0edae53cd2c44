"""One account-store fixture per backend: every contract test runs against both."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.adapters.accountstore.base import AccountStore
from shared.adapters.accountstore.sqlite.store import SqliteAccountStore
from shared.adapters.accountstore.table.store import TableAccountStore, build_service
from shared.core.settings import TableSettings
from tests.conftest import Azurite


@pytest.fixture(params=["sqlite", "table"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AccountStore]:
    if request.param == "sqlite":
        yield SqliteAccountStore(tmp_path / "accounts.sqlite3")
        return
    azurite: Azurite = request.getfixturevalue("azurite")
    table = "t" + uuid.uuid4().hex[:20]  # a fresh table per test keeps tests independent
    settings = TableSettings(table, connection_string=azurite.connection_string)
    yield TableAccountStore(build_service(settings), table)
