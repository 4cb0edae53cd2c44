"""Where each row of the accounts table lives: its PartitionKey and the shape of its RowKey.

Rows of an owner's partition:
- `key_<id>`: a key record.
- `acct_<id>`: the account (point reads, ETag-checked updates), and `pair_<tenant>_<application>`,
  the owner's one account of that tenant + application.
- `acctidx_<inverted createdAt second>_<id>`: a copy of the account whose RowKey sorts newest
  first, ties by id: a page of the list is ONE range query on it (`RowKey gt <last shown>`), the
  `status` filter in the same query. Every transaction that writes `acct_` writes it too.
- `meta`: the owner's event sequence number and account counts (`GET /api/onboarding` is one
  point read of it).
- `evt_<seq>` (the change feed, in sequence order) and `hist_<id>_<inverted seq>` (one
  account's history, newest first): each event's two rows.

Partitions of the app's own ('%' is escaped in every owner's PartitionKey, so no owner has
one): `%schedule`, the health check's schedule (see `schedule`), `%housekeeping`, where the
retention scan resumes and the chores' last runs are kept, and `%issuer`, the issuer key's
records (`issuerkey_<generation>`, see `issuer`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

KEY, ACCOUNT, PAIR = "key_", "acct_", "pair_"
INDEX, EVENT, HISTORY, META = "acctidx_", "evt_", "hist_", "meta"
_SEQ_CEILING = 10**16 - 1
HOUSEKEEPING = "%housekeeping"
RETENTION_SCAN = (HOUSEKEEPING, "events")  # where the retention sweep's scan resumes
# The schedule's partition, its set rows (see `schedule`), the sweep's state row and the second
# release's entries (removed on upgrade).
SCHEDULE, ANCHOR, LAST, RENEW = "%schedule", "acc_", "last_", "renew_"
SWEEP_STATE, LEGACY_DUE = "sweep", "due_"
# The sweep's state in a table this release made: it holds no account without its set.
NEW_SWEEP = {"PartitionKey": SCHEDULE, "RowKey": SWEEP_STATE, "Kind": "sweep",
             "active": False, "continuation": "", "migrated": True, "ready": True}  # fmt: skip
ISSUER, ISSUER_KEY = "%issuer", "issuerkey_"
MAX_PAGE = 1000  # the service's most entities per query page
_SYSTEM = {"PartitionKey", "RowKey", "Timestamp", "Kind"}


def partition_of(owner: str) -> str:
    """An owner as a PartitionKey: `/ \\ # ?` and control characters are not allowed there."""
    return quote(owner, safe="")


def prefix_filter(prefix: str) -> str:
    """Every RowKey that starts with the prefix: [prefix, prefix with its last char + 1)."""
    return f"RowKey ge '{prefix}' and RowKey lt '{upper(prefix)}'"


def upper(prefix: str) -> str:
    """The first RowKey past every one that starts with `prefix`."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def anchor_rk(pk: str, account_id: str) -> str:
    # '!' sorts before every character of an escaped owner, so anchors sort as accounts do
    # (PartitionKey, then id): the sweep reads a page of accounts' anchors in one range.
    return f"{ANCHOR}{pk}!{account_id}"


def event_rk(seq: int) -> str:
    return f"{EVENT}{seq:016d}"


def history_rk(account_id: str, seq: int) -> str:
    return f"{HISTORY}{account_id}_{_SEQ_CEILING - seq:016d}"


def row_of(entity: Any) -> dict[str, Any]:
    """An entity's own properties, without the service's and the row's kind."""
    return {k: v for k, v in dict(entity).items() if k not in _SYSTEM}
