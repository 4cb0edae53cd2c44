"""The embedded account store, made of its parts: keys, accounts, schedule, events and the
issuer key's records, over one SQLite file."""

from __future__ import annotations

from shared.adapters.accountstore.sqlite.accounts import SqliteAccounts
from shared.adapters.accountstore.sqlite.events import SqliteEvents
from shared.adapters.accountstore.sqlite.issuer import SqliteIssuerKeys
from shared.adapters.accountstore.sqlite.keys import SqliteKeys
from shared.adapters.accountstore.sqlite.schedule import SqliteSchedule


class SqliteAccountStore(
    SqliteKeys, SqliteAccounts, SqliteSchedule, SqliteEvents, SqliteIssuerKeys
):
    backend = "sqlite"

    def ping(self) -> None:
        with self._connect() as db:
            db.execute("SELECT 1").fetchone()
