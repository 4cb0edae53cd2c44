"""The SQLite store's part of the health check's schedule: each account's row carries its place
(`last_started`, `renew_at`) and its lease, written in the account's own transactions; and the
chores instances take turns on."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import datetime, timedelta

from shared.adapters.accountstore.codec import account_from_row
from shared.adapters.accountstore.sqlite.file import SqliteFile
from shared.core.model import Account
from shared.core.schedule import Place
from shared.support.timefmt import from_rfc3339, to_rfc3339


class SqliteSchedule(SqliteFile):
    def take_due(
        self, due_by: datetime, limit: int, lease: timedelta, holder: str
    ) -> list[Account]:
        # One write transaction reads the due rows (two index ranges: `last_started` older than
        # the interval in force, `renew_at` passed; merged stalest first) and leases them, so
        # two instances never take the same account while its lease runs.
        moment = int(time.time())
        last, renew = self.policy.due_by(due_by)
        with self._write() as db:
            rows = {
                row[0]: row
                for column, bound in (("last_started", last), ("renew_at", renew))
                for row in db.execute(
                    "SELECT id, data, last_started, renew_at FROM accounts "  # noqa: S608
                    f"WHERE {column} <= ? AND lease_until < ? ORDER BY {column}, id LIMIT ?",
                    (bound, moment, limit),
                )
            }
            due = sorted(
                rows.values(),
                key=lambda r: (Place(r[2], r[3]).due_under(self.policy.interval), r[0]),
            )[:limit]
            db.executemany(
                "UPDATE accounts SET lease_until = ?, lease_holder = ? WHERE id = ?",
                [(moment + int(lease.total_seconds()), holder, r[0]) for r in due],
            )
        return [account_from_row(json.loads(r[1])) for r in due]

    def release(self, accounts: Sequence[Account], holder: str) -> None:
        with self._write() as db:
            db.executemany(
                "UPDATE accounts SET lease_until = 0, lease_holder = NULL "
                "WHERE id = ? AND lease_holder = ?",
                [(a.id, holder) for a in accounts],
            )

    def claim_chore(self, name: str, now: datetime, every: timedelta) -> bool:
        if every <= timedelta(0):
            return True
        with self._write() as db:
            row = db.execute("SELECT last_run FROM chores WHERE name = ?", (name,)).fetchone()
            if row and now - from_rfc3339(row[0]) < every:
                return False
            db.execute(
                "INSERT INTO chores (name, last_run) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET last_run = excluded.last_run",
                (name, to_rfc3339(now)),
            )
        return True

    def prepare_schedule(self, stop_at: float) -> None:
        """Nothing to do: opening the file filled the schedule columns of every account."""

    def sweep_schedule(self, stop_at: float, pages: int, *, restart: bool) -> bool:
        """Nothing to do: an account's schedule columns are written in its own row, in the
        write's transaction, so none can go missing."""
        return False
