"""The SQLite file's tables, an account's row in them, and the upgrade of an earlier release's file.

Pages of accounts are keyset queries on an index of (owner, sort key) (and of (owner, status,
sort key) for the status filter), the sort key being (inverted createdAt, id): one indexed range
read per page. A file of the first release gets the two columns and their index when it is
opened (one pass over its accounts, once).
"""

from __future__ import annotations

import json
import sqlite3

from shared.adapters.accountstore.codec import account_from_row, account_sort_key, account_to_row
from shared.core.model import Account
from shared.core.schedule import SchedulePolicy

SCHEMA = """
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
CREATE TABLE IF NOT EXISTS issuer_keys (
    generation INTEGER PRIMARY KEY,
    key_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_account ON events (owner, account_id, seq);
CREATE INDEX IF NOT EXISTS events_by_time ON events (at);
"""
# After the columns exist (a first-release file gets them in `upgrade`).
_PAGE_INDEXES = """
CREATE INDEX IF NOT EXISTS accounts_page ON accounts (owner, sort_key);
CREATE INDEX IF NOT EXISTS accounts_page_status ON accounts (owner, status, sort_key);
CREATE INDEX IF NOT EXISTS accounts_last ON accounts (last_started, id);
CREATE INDEX IF NOT EXISTS accounts_renew ON accounts (renew_at, id);
DROP INDEX IF EXISTS accounts_due;
"""
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


def upgrade(db: sqlite3.Connection, policy: SchedulePolicy) -> None:
    """Give a file of an earlier release the page and schedule columns, filled from each
    account's data (`due_at`, the second release's interval-bound due time, is no longer
    read), inside the caller's write transaction."""
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
        place = policy.place(account)
        db.execute(
            "UPDATE accounts SET sort_key = ?, status = ?, last_started = ?, renew_at = ? "
            "WHERE id = ?",
            (_sort_key(account), account.status, place.last, place.renew, account_id),
        )
    for statement in _PAGE_INDEXES.strip().splitlines():
        db.execute(statement)


def _sort_key(account: Account) -> str:
    return account_sort_key(account.created_at, account.id)
