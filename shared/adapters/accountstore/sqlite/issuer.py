"""The SQLite store's issuer key records: one row per generation in `issuer_keys`. A claim is an
insert (the primary key refuses a second one of a generation); every other change names the
row's version and key id, inside one write transaction."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace

from shared.adapters.accountstore.base import VersionConflict
from shared.adapters.accountstore.sqlite.file import SqliteFile
from shared.core.issuer_keys import IssuerKey, from_row, to_row


class SqliteIssuerKeys(SqliteFile):
    def issuer_keys(self) -> list[IssuerKey]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT data, version FROM issuer_keys ORDER BY generation"
            ).fetchall()
        return [from_row(json.loads(data), str(version)) for data, version in rows]

    def claim_issuer_key(self, record: IssuerKey) -> IssuerKey | None:
        try:
            with self._write() as db:
                db.execute(
                    "INSERT INTO issuer_keys (generation, key_id, version, data) "
                    "VALUES (?, ?, 1, ?)",
                    (record.generation, record.key_id, json.dumps(to_row(record))),
                )
        except sqlite3.IntegrityError:
            return None
        return replace(record, version="1")

    def update_issuer_key(self, record: IssuerKey) -> IssuerKey:
        version = _version(record)
        with self._write() as db:
            changed = db.execute(
                "UPDATE issuer_keys SET data = ?, version = version + 1 "
                "WHERE generation = ? AND key_id = ? AND version = ?",
                (json.dumps(to_row(record)), record.generation, record.key_id, version),
            ).rowcount
        if not changed:
            raise VersionConflict(f"issuer key {record.generation}")
        return replace(record, version=str(version + 1))

    def delete_issuer_key(self, record: IssuerKey) -> None:
        version = _version(record)
        with self._write() as db:
            row = db.execute(
                "SELECT key_id, version FROM issuer_keys WHERE generation = ?",
                (record.generation,),
            ).fetchone()
            if row is None:
                return
            if tuple(row) != (record.key_id, version):
                raise VersionConflict(f"issuer key {record.generation}")
            db.execute("DELETE FROM issuer_keys WHERE generation = ?", (record.generation,))


def _version(record: IssuerKey) -> int:
    try:
        return int(record.version)
    except ValueError:
        raise VersionConflict(f"issuer key {record.generation}") from None
