"""The SQLite store's accounts: each change one write transaction with its key records, its
place in the schedule and its events."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import replace

from shared.adapters.accountstore.base import (
    NO_KEY_CHANGES,
    KeyChanges,
    KeyTaken,
    Page,
    PairTaken,
    VersionConflict,
    VersionMismatch,
    account_position,
)
from shared.adapters.accountstore.codec import (
    account_from_row,
    account_to_row,
    key_from_row,
    key_to_row,
)
from shared.adapters.accountstore.sqlite.events import record
from shared.adapters.accountstore.sqlite.file import SqliteFile
from shared.adapters.accountstore.sqlite.keys import bind_key, mark_deleting
from shared.adapters.accountstore.sqlite.schema import ROW_COLUMNS, account_row
from shared.core.model import Account, Event


class SqliteAccounts(SqliteFile):
    def link(self, account: Account, events: Sequence[Event] = ()) -> None:
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
                f"INSERT INTO accounts ({', '.join(ROW_COLUMNS)}) "  # noqa: S608 - constant text
                f"VALUES ({', '.join('?' * len(ROW_COLUMNS))})",
                account_row(account, self.policy),
            )
            for event in events:
                record(db, event)

    def get_account(self, owner: str, account_id: str) -> Account | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT data FROM accounts WHERE id = ? AND owner = ?", (account_id, owner)
            ).fetchone()
        return account_from_row(json.loads(row[0])) if row else None

    def page_accounts(
        self, owner: str, top: int, after: str | None = None, status: str | None = None
    ) -> Page[Account]:
        start = account_position(after) if after is not None else ""
        where = (
            "owner = ? AND status = ? AND sort_key > ?" if status else "owner = ? AND sort_key > ?"
        )
        args = (owner, status, start) if status else (owner, start)
        with self._connect() as db:
            rows = db.execute(
                f"SELECT data, sort_key FROM accounts WHERE {where} ORDER BY sort_key LIMIT ?",  # noqa: S608 - constant text
                (*args, top + 1),
            ).fetchall()
        shown = rows[:top]
        return Page(
            [account_from_row(json.loads(r[0])) for r in shown],
            shown[-1][1] if len(rows) > top else None,
        )

    def count_accounts(self, owner: str) -> tuple[int, int]:
        # An index-only count over the owner's (status) entries: no account is read.
        with self._connect() as db:
            linked, connected = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(status = 'connected'), 0) FROM accounts "
                "WHERE owner = ?",
                (owner,),
            ).fetchone()
        return int(linked), int(connected)

    def list_all_accounts(self) -> Iterator[Account]:
        with self._connect() as db:
            rows = db.execute("SELECT data FROM accounts ORDER BY id").fetchall()
        return (account_from_row(json.loads(r[0])) for r in rows)

    def update_account(
        self,
        account: Account,
        events: Sequence[Event] = (),
        keys: KeyChanges = NO_KEY_CHANGES,
    ) -> Account:
        new = account.updated(version=account.version + 1)
        with self._write() as db:
            place = self.policy.place(new)
            cursor = db.execute(
                # A write moves the account in the schedule; a timer's lease on it stays (only
                # its holder ends it: `release`).
                "UPDATE accounts SET data = ?, version = ?, status = ?, last_started = ?, "
                "renew_at = ? WHERE id = ? AND owner = ? AND version = ?",
                (
                    json.dumps(account_to_row(new)),
                    new.version,
                    new.status,
                    place.last,
                    place.renew,
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
            for key_id in keys.bind:
                bind_key(db, account, key_id)
            for key_id in keys.release:
                mark_deleting(db, account.owner, key_id)
            for event in events:
                record(db, event)
        return new

    def unlink(
        self,
        owner: str,
        account_id: str,
        events: Sequence[Event] = (),
        *,
        version: int | None = None,
    ) -> Account | None:
        with self._write() as db:
            row = db.execute(
                "SELECT data FROM accounts WHERE id = ? AND owner = ?", (account_id, owner)
            ).fetchone()
            if not row:
                return None
            account = account_from_row(json.loads(row[0]))
            if version is not None and account.version != version:
                raise VersionMismatch(account_id)
            db.execute("DELETE FROM accounts WHERE id = ?", (account_id,))
            for key_id in account.key_ids():
                mark_deleting(db, owner, key_id)
            for event in events:
                record(db, replace(event, previous_status=account.status))
        return account
