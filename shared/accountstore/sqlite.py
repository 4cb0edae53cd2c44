"""The embedded account store: one SQLite file under LOCAL_STATE_DIR (`make run`, tests).

Each call opens its own connection, so the store is safe from the host's worker threads; writes
run in `BEGIN IMMEDIATE` transactions, so the uniqueness rules hold under concurrency.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from shared.accountstore.base import (
    AccountStore,
    KeyTaken,
    PairTaken,
    VersionConflict,
    newest_first,
    store_identity,
)
from shared.accountstore.codec import account_from_row, account_to_row, key_from_row, key_to_row
from shared.errors import DependencyUnavailable
from shared.records import Account, KeyRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    key_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    application_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    data TEXT NOT NULL,
    UNIQUE (owner, tenant_id, application_id)
);
CREATE INDEX IF NOT EXISTS accounts_by_owner ON accounts (owner);
"""


class SqliteAccountStore(AccountStore):
    backend = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.identity = store_identity(self.backend, str(path.resolve()))
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")  # kept in the file: set once, not per call
            db.executescript(_SCHEMA)

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

    # --- keys --------------------------------------------------------------------------------
    def add_key(self, record: KeyRecord) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO keys (key_id, owner, data) VALUES (?, ?, ?)",
                (record.key_id, record.owner, json.dumps(key_to_row(record))),
            )

    def get_key(self, owner: str, key_id: str) -> KeyRecord | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT data FROM keys WHERE key_id = ? AND owner = ?", (key_id, owner)
            ).fetchone()
        return key_from_row(json.loads(row[0])) if row else None

    def delete_key(self, owner: str, key_id: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM keys WHERE key_id = ? AND owner = ?", (key_id, owner))

    def list_keys(self) -> Iterator[KeyRecord]:
        with self._connect() as db:
            rows = db.execute("SELECT data FROM keys ORDER BY key_id").fetchall()
        return (key_from_row(json.loads(r[0])) for r in rows)

    def mark_unused_key_deleting(self, owner: str, key_id: str) -> bool:
        # Inside one write transaction, as `link` binds inside one: whichever commits first wins.
        with self._write() as db:
            row = db.execute(
                "SELECT data FROM keys WHERE key_id = ? AND owner = ?", (key_id, owner)
            ).fetchone()
            if not row:
                return False
            data = json.loads(row[0])
            if data.get("accountId"):
                return False
            data["deleting"] = True
            db.execute("UPDATE keys SET data = ? WHERE key_id = ?", (json.dumps(data), key_id))
        return True

    # --- accounts ----------------------------------------------------------------------------
    def link(self, account: Account) -> None:
        with self._write() as db:
            existing = db.execute(
                "SELECT id FROM accounts WHERE owner = ? AND tenant_id = ? AND application_id = ?",
                (account.owner, account.tenant_id, account.application_id),
            ).fetchone()
            if existing:
                raise PairTaken(existing[0])
            key_row = db.execute(
                "SELECT data FROM keys WHERE key_id = ? AND owner = ?",
                (account.key_id, account.owner),
            ).fetchone()
            key = key_from_row(json.loads(key_row[0])) if key_row else None
            if key is None or key.deleting or key.account_id:
                raise KeyTaken(key.account_id if key else None)
            bound = key_to_row(key)
            bound["accountId"] = account.id
            db.execute("UPDATE keys SET data = ? WHERE key_id = ?", (json.dumps(bound), key.key_id))
            db.execute(
                "INSERT INTO accounts (id, owner, tenant_id, application_id, version, data) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    account.id,
                    account.owner,
                    account.tenant_id,
                    account.application_id,
                    account.version,
                    json.dumps(account_to_row(account)),
                ),
            )

    def get_account(self, owner: str, account_id: str) -> Account | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT data FROM accounts WHERE id = ? AND owner = ?", (account_id, owner)
            ).fetchone()
        return account_from_row(json.loads(row[0])) if row else None

    def list_accounts(self, owner: str) -> list[Account]:
        with self._connect() as db:
            rows = db.execute("SELECT data FROM accounts WHERE owner = ?", (owner,)).fetchall()
        return newest_first([account_from_row(json.loads(r[0])) for r in rows])

    def list_all_accounts(self) -> Iterator[Account]:
        with self._connect() as db:
            rows = db.execute("SELECT data FROM accounts ORDER BY id").fetchall()
        return (account_from_row(json.loads(r[0])) for r in rows)

    def update_account(self, account: Account) -> Account:
        new = account.updated(version=account.version + 1)
        with self._write() as db:
            cursor = db.execute(
                "UPDATE accounts SET data = ?, version = ? "
                "WHERE id = ? AND owner = ? AND version = ?",
                (
                    json.dumps(account_to_row(new)),
                    new.version,
                    account.id,
                    account.owner,
                    account.version,
                ),
            )
            if cursor.rowcount == 0:
                gone = not db.execute(
                    "SELECT 1 FROM accounts WHERE id = ? AND owner = ?", (account.id, account.owner)
                ).fetchone()
                if gone:
                    raise LookupError(account.id)
                raise VersionConflict(account.id)
        return new

    def unlink(self, owner: str, account_id: str) -> Account | None:
        with self._write() as db:
            row = db.execute(
                "SELECT data FROM accounts WHERE id = ? AND owner = ?", (account_id, owner)
            ).fetchone()
            if not row:
                return None
            account = account_from_row(json.loads(row[0]))
            db.execute("DELETE FROM accounts WHERE id = ?", (account_id,))
            key_row = db.execute(
                "SELECT data FROM keys WHERE key_id = ? AND owner = ?", (account.key_id, owner)
            ).fetchone()
            if key_row:
                data = json.loads(key_row[0])
                data["deleting"] = True
                db.execute(
                    "UPDATE keys SET data = ? WHERE key_id = ?", (json.dumps(data), account.key_id)
                )
        return account

    def ping(self) -> None:
        with self._connect() as db:
            db.execute("SELECT 1").fetchone()
