"""The SQLite file under the store's parts: opened (and upgraded) once, then a connection per call.

Each call opens its own connection, so the store is safe from the host's worker threads; writes
run in `BEGIN IMMEDIATE` transactions, so the uniqueness rules hold under concurrency.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from shared.adapters.accountstore.base import AccountStore, store_identity
from shared.adapters.accountstore.sqlite.schema import SCHEMA, upgrade
from shared.core.errors import DependencyUnavailable
from shared.core.schedule import DEFAULT_POLICY, SchedulePolicy


class SqliteFile(AccountStore):
    """What the parts of the SQLite store share: the file and the transactions on it. Each
    part implements its share of the interface; `store.SqliteAccountStore` composes them."""

    def __init__(self, path: Path, policy: SchedulePolicy = DEFAULT_POLICY) -> None:
        self.path = path
        self.policy = policy
        self.identity = store_identity(self.backend, str(path.resolve()))
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")  # kept in the file: set once, not per call
            db.executescript(SCHEMA)
        with self._write() as db:
            upgrade(db, self.policy)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            with closing(sqlite3.connect(self.path, timeout=30, isolation_level=None)) as db:
                yield db
        except sqlite3.OperationalError as exc:
            raise DependencyUnavailable("account store", f"local account store: {exc}") from exc

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
