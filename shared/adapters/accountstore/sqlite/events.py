"""The SQLite store's events: each account's history, the owner's change feed, their retention.

The owner's next sequence number is taken in the write transaction of the change (`owner_seq`),
and SQLite runs one write transaction at a time for the whole file, threads and processes
alike, so events commit in sequence order with no gap. The feed reads the owner's last
committed number S first and then events in (after, S]: all of them are committed and none can
appear there later, so a reader that passes back the cursor sees every event once, in order.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from datetime import datetime

from shared.adapters.accountstore.base import BadPosition, FeedExpired, Page, seq_position
from shared.adapters.accountstore.codec import event_from_row, event_to_row
from shared.adapters.accountstore.sqlite.file import SqliteFile
from shared.core.model import Event
from shared.support.timefmt import to_rfc3339


class SqliteEvents(SqliteFile):
    def account_history(
        self, owner: str, account_id: str, top: int, after: str | None = None
    ) -> Page[Event]:
        below = seq_position(after) if after is not None else 2**63 - 1
        with self._connect() as db:
            rows = db.execute(
                "SELECT data FROM events WHERE owner = ? AND account_id = ? AND seq < ? "
                "ORDER BY seq DESC LIMIT ?",
                (owner, account_id, below, top + 1),
            ).fetchall()
        events = [event_from_row(json.loads(r[0])) for r in rows]
        shown = events[:top]
        return Page(shown, str(shown[-1].seq) if len(events) > top else None)

    def events_after(self, owner: str, after: int | None, top: int) -> tuple[list[Event], int]:
        with self._connect() as db:
            db.execute("BEGIN")  # one snapshot for both reads
            row = db.execute("SELECT seq FROM owner_seq WHERE owner = ?", (owner,)).fetchone()
            last = int(row[0]) if row else 0
            if after is not None and after > last:
                db.execute("COMMIT")
                raise BadPosition(str(after))
            rows = db.execute(
                "SELECT seq, data FROM events WHERE owner = ? AND seq > ? AND seq <= ? "
                "ORDER BY seq LIMIT ?",
                (owner, after or 0, last, top),
            ).fetchall()
            db.execute("COMMIT")
        # Events commit with no gap and retention removes a prefix: a first event beyond
        # after + 1 (or none though some were written) means retention passed the cursor.
        oldest = int(rows[0][0]) - 1 if rows else last
        if after is not None and after < oldest:
            raise FeedExpired(oldest)
        events = [event_from_row(json.loads(r[1])) for r in rows]
        return events, events[-1].seq if len(events) == top else last

    def expire_events(self, before: datetime, limit: int) -> int:
        """Each owner's events older than `before` from its oldest on, up to the first one
        that is not: the owners found are those whose oldest event is old enough."""
        cutoff = to_rfc3339(before)
        removed = 0
        with self._write() as db:
            owners = db.execute(
                "SELECT e.owner FROM events e WHERE e.at < ? AND e.seq = "
                "(SELECT MIN(seq) FROM events WHERE owner = e.owner) LIMIT ?",
                (cutoff, limit),
            ).fetchall()
            for (owner,) in owners:
                rows = db.execute(
                    "SELECT seq, at FROM events WHERE owner = ? ORDER BY seq LIMIT ?",
                    (owner, limit - removed),
                ).fetchall()
                old = [seq for seq, at in itertools.takewhile(lambda r: r[1] < cutoff, rows)]
                if old:
                    db.execute("DELETE FROM events WHERE owner = ? AND seq <= ?", (owner, old[-1]))
                removed += len(old)
                if removed >= limit:
                    break
        return removed


def record(db: sqlite3.Connection, event: Event) -> None:
    """Write the event with the owner's next sequence number, inside the caller's transaction."""
    (seq,) = db.execute(
        "INSERT INTO owner_seq (owner, seq) VALUES (?, 1) "
        "ON CONFLICT (owner) DO UPDATE SET seq = seq + 1 RETURNING seq",
        (event.owner,),
    ).fetchone()
    row = event_to_row(event)
    row["seq"] = seq
    db.execute(
        "INSERT INTO events (owner, seq, account_id, at, data) VALUES (?, ?, ?, ?, ?)",
        (event.owner, seq, event.account_id, row["at"], json.dumps(row)),
    )
