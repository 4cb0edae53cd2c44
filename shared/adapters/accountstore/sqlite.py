"""The embedded account store: one SQLite file under LOCAL_STATE_DIR (`make run`, tests).

Each call opens its own connection, so the store is safe from the host's worker threads; writes
run in `BEGIN IMMEDIATE` transactions, so the uniqueness rules hold under concurrency.

Pages of accounts are keyset queries on an index of (owner, sort key) (and of (owner, status,
sort key) for the status filter), the sort key being (inverted createdAt, id): one indexed range
read per page. A file of the first release gets the two columns and their index when it is
opened (one pass over its accounts, once).

Events: the owner's next sequence number is taken in the write transaction of the change
(`owner_seq`), and SQLite runs one write transaction at a time for the whole file, threads and
processes alike, so events commit in sequence order with no gap. The feed reads the owner's last
committed number S first and then events in (after, S]: all of them are committed and none can
appear there later, so a reader that passes back the cursor sees every event once, in order.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from shared.adapters.accountstore.base import (
    NO_KEY_CHANGES,
    AccountStore,
    BadPosition,
    FeedExpired,
    KeyChanges,
    KeyTaken,
    Page,
    PairTaken,
    VersionConflict,
    VersionMismatch,
    account_position,
    seq_position,
    store_identity,
)
from shared.adapters.accountstore.codec import (
    account_from_row,
    account_sort_key,
    account_to_row,
    event_from_row,
    event_to_row,
    key_from_row,
    key_to_row,
)
from shared.core.errors import DependencyUnavailable
from shared.core.model import Account, Event, KeyRecord
from shared.core.schedule import DEFAULT_POLICY, Place, SchedulePolicy
from shared.support.timefmt import from_rfc3339, to_rfc3339

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
    sort_key TEXT,
    status TEXT,
    due_at TEXT,
    lease_until INTEGER NOT NULL DEFAULT 0,
    lease_holder TEXT,
    last_started TEXT,
    renew_at TEXT,
    UNIQUE (owner, tenant_id, application_id)
);
CREATE INDEX IF NOT EXISTS accounts_by_owner ON accounts (owner);
CREATE TABLE IF NOT EXISTS owner_seq (
    owner TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    owner TEXT NOT NULL,
    seq INTEGER NOT NULL,
    account_id TEXT NOT NULL,
    at TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (owner, seq)
);
CREATE TABLE IF NOT EXISTS chores (
    name TEXT PRIMARY KEY,
    last_run TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_account ON events (owner, account_id, seq);
CREATE INDEX IF NOT EXISTS events_by_time ON events (at);
"""
# After the columns exist (a first-release file gets them in `_migrate`).
_PAGE_INDEXES = """
CREATE INDEX IF NOT EXISTS accounts_page ON accounts (owner, sort_key);
CREATE INDEX IF NOT EXISTS accounts_page_status ON accounts (owner, status, sort_key);
CREATE INDEX IF NOT EXISTS accounts_last ON accounts (last_started, id);
CREATE INDEX IF NOT EXISTS accounts_renew ON accounts (renew_at, id);
DROP INDEX IF EXISTS accounts_due;
"""


class SqliteAccountStore(AccountStore):
    backend = "sqlite"

    def __init__(self, path: Path, policy: SchedulePolicy = DEFAULT_POLICY) -> None:
        self.path = path
        self.policy = policy
        self.identity = store_identity(self.backend, str(path.resolve()))
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")  # kept in the file: set once, not per call
            db.executescript(_SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Give a file of an earlier release the page and schedule columns, filled from each
        account's data (`due_at`, the second release's interval-bound due time, is no longer
        read)."""
        with self._write() as db:
            columns = {row[1] for row in db.execute("PRAGMA table_info(accounts)")}
            for column, kind in _LATER_COLUMNS:
                if column not in columns:
                    db.execute(f"ALTER TABLE accounts ADD COLUMN {column} {kind}")
            rows = db.execute(
                "SELECT id, data FROM accounts WHERE sort_key IS NULL OR status IS NULL "
                "OR last_started IS NULL"
            ).fetchall()
            for account_id, data in rows:
                account = account_from_row(json.loads(data))
                place = self.policy.place(account)
                db.execute(
                    "UPDATE accounts SET sort_key = ?, status = ?, last_started = ?, renew_at = ? "
                    "WHERE id = ?",
                    (_sort_key(account), account.status, place.last, place.renew, account_id),
                )
            for statement in _PAGE_INDEXES.strip().splitlines():
                db.execute(statement)

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
                _record(db, event)

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
                _bind_key(db, account, key_id)
            for key_id in keys.release:
                _mark_deleting(db, account.owner, key_id)
            for event in events:
                _record(db, event)
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
                _mark_deleting(db, owner, key_id)
            for event in events:
                _record(db, replace(event, previous_status=account.status))
        return account

    # --- history -----------------------------------------------------------------------------
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

    def ping(self) -> None:
        with self._connect() as db:
            db.execute("SELECT 1").fetchone()


# Columns added after the first release: a file that lacks them gets them when opened.
_LATER_COLUMNS = (
    ("sort_key", "TEXT"),
    ("status", "TEXT"),
    ("due_at", "TEXT"),
    ("lease_until", "INTEGER NOT NULL DEFAULT 0"),
    ("lease_holder", "TEXT"),
    ("last_started", "TEXT"),
    ("renew_at", "TEXT"),
)
# An account's row as `link` inserts it (`account_row`); fleet benchmarks write the same.
ROW_COLUMNS = (
    "id", "owner", "tenant_id", "application_id", "version", "data", "sort_key", "status",
    "last_started", "renew_at",
)  # fmt: skip


def account_row(account: Account, policy: SchedulePolicy) -> tuple[object, ...]:
    place = policy.place(account)
    return (
        account.id,
        account.owner,
        account.tenant_id,
        account.application_id,
        account.version,
        json.dumps(account_to_row(account)),
        _sort_key(account),
        account.status,
        place.last,
        place.renew,
    )


def _sort_key(account: Account) -> str:
    return account_sort_key(account.created_at, account.id)


def _bind_key(db: sqlite3.Connection, account: Account, key_id: str) -> None:
    row = db.execute(
        "SELECT data FROM keys WHERE key_id = ? AND owner = ?", (key_id, account.owner)
    ).fetchone()
    data = json.loads(row[0]) if row else None
    if data is None or data.get("deleting") or data.get("accountId") not in ("", None, account.id):
        raise KeyTaken((data or {}).get("accountId") or None)
    data["accountId"] = account.id
    db.execute("UPDATE keys SET data = ? WHERE key_id = ?", (json.dumps(data), key_id))


def _mark_deleting(db: sqlite3.Connection, owner: str, key_id: str) -> None:
    row = db.execute(
        "SELECT data FROM keys WHERE key_id = ? AND owner = ?", (key_id, owner)
    ).fetchone()
    if row:
        data = json.loads(row[0])
        data["deleting"] = True
        db.execute("UPDATE keys SET data = ? WHERE key_id = ?", (json.dumps(data), key_id))


def _record(db: sqlite3.Connection, event: Event) -> None:
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
