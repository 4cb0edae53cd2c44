"""The SQLite store's key records, and the changes an account's write makes to them."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator

from shared.adapters.accountstore.base import KeyTaken
from shared.adapters.accountstore.codec import key_from_row, key_to_row
from shared.adapters.accountstore.sqlite.file import SqliteFile
from shared.core.model import Account, KeyRecord


class SqliteKeys(SqliteFile):
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


def bind_key(db: sqlite3.Connection, account: Account, key_id: str) -> None:
    """Bind the key to the account inside the caller's transaction; KeyTaken when it is
    another's, gone or being deleted."""
    row = db.execute(
        "SELECT data FROM keys WHERE key_id = ? AND owner = ?", (key_id, account.owner)
    ).fetchone()
    data = json.loads(row[0]) if row else None
    if data is None or data.get("deleting") or data.get("accountId") not in ("", None, account.id):
        raise KeyTaken((data or {}).get("accountId") or None)
    data["accountId"] = account.id
    db.execute("UPDATE keys SET data = ? WHERE key_id = ?", (json.dumps(data), key_id))


def mark_deleting(db: sqlite3.Connection, owner: str, key_id: str) -> None:
    """Mark the key `deleting` inside the caller's transaction (a missing record is no error)."""
    row = db.execute(
        "SELECT data FROM keys WHERE key_id = ? AND owner = ?", (key_id, owner)
    ).fetchone()
    if row:
        data = json.loads(row[0])
        data["deleting"] = True
        db.execute("UPDATE keys SET data = ? WHERE key_id = ?", (json.dumps(data), key_id))
