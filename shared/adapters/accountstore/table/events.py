"""The Table store's events: the owner's `meta` row that orders them, each account's history,
the owner's change feed, and their retention.

Why the feed never skips or repeats an event. Every change that records an event runs one
entity-group transaction that (a) updates `meta` from seq s to s+1 under the ETag it read, and
(b) creates `evt_<s+1>` (and `hist_`) with the change. The transaction is atomic and the ETag
makes the `meta` updates a chain: the writer of s+1 read `meta` at s, which exists only once the
transaction of s committed; a writer that lost the race fails as a whole and retries with a
fresh `meta`. So the committed events are always exactly 1..S with S the seq in `meta`, and
`evt_<n>` never appears after `meta` says S >= n. The feed reads `meta` (S) first, then the
range (after, S]: every row there is committed and the range can never gain a row later. A
reader that passes back the cursor (the last seq returned, or S when the range was exhausted)
therefore sees each event exactly once, in sequence order, whatever instances write meanwhile.
Retention removes the oldest events only.

First-release partitions have no `meta` row: the first write or list that needs it counts the
owner's accounts and creates it (no counted change can commit before `meta` exists, as every
such change updates it).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from contextlib import suppress
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from shared.adapters.accountstore.base import BadPosition, FeedExpired, Page, seq_position
from shared.adapters.accountstore.codec import event_from_row, event_to_row
from shared.adapters.accountstore.table.client import TableRows, transient
from shared.adapters.accountstore.table.layout import (
    ACCOUNT,
    EVENT,
    HISTORY,
    MAX_PAGE,
    META,
    RETENTION_SCAN,
    event_rk,
    history_rk,
    partition_of,
    prefix_filter,
    row_of,
    upper,
)
from shared.core.errors import DependencyUnavailable
from shared.core.model import Event
from shared.support.timefmt import to_rfc3339

_SCAN_PAGES = 5  # service pages the retention scan reads at most per call


class TableEvents(TableRows):
    def _ensure_meta(self, pk: str, *, reading: bool = False) -> Any:
        """The owner's `meta` row, made (with the counts of the accounts there) when missing.
        A read of an owner with no account at all writes nothing (None)."""
        meta = self._get(pk, META)
        if meta is not None:
            return meta
        rows = self._query(f"PartitionKey eq @pk and {prefix_filter(ACCOUNT)}", pk=pk)
        if reading and not rows:
            return None
        entity = {
            "PartitionKey": pk,
            "RowKey": META,
            "Kind": "meta",
            "seq": 0,
            "linked": len(rows),
            "connected": sum(1 for r in rows if r.get("status") == "connected"),
            "indexed": not rows,
        }
        # Another writer that made it first counted the same accounts: its counts are as good.
        with suppress(ResourceExistsError):
            self._call(lambda table: table.create_entity(entity))
        meta = self._get(pk, META)
        if meta is None:
            raise DependencyUnavailable("account store")
        return meta

    def account_history(
        self, owner: str, account_id: str, top: int, after: str | None = None
    ) -> Page[Event]:
        pk = partition_of(owner)
        prefix = f"{HISTORY}{account_id}_"
        start = history_rk(account_id, seq_position(after)) if after is not None else prefix
        entities, more = self._one_page(
            "PartitionKey eq @pk and RowKey gt @start and RowKey lt @end",
            {"pk": pk, "start": start, "end": upper(prefix)},
            min(top + 1, MAX_PAGE),
        )
        shown = [event_from_row(row_of(e)) for e in entities[:top]]
        last = str(shown[-1].seq) if shown else None
        return Page(shown, last if (len(entities) > top or more) else None)

    def events_after(self, owner: str, after: int | None, top: int) -> tuple[list[Event], int]:
        pk = partition_of(owner)
        meta = self._get(pk, META)  # S first: every event up to S is committed (see above)
        last = int(meta["seq"]) if meta is not None else 0
        if after is not None and after > last:
            raise BadPosition(str(after))
        if after == last:
            return [], last
        entities, more = self._one_page(
            "PartitionKey eq @pk and RowKey gt @start and RowKey le @end",
            {"pk": pk, "start": event_rk(after or 0), "end": event_rk(last)},
            min(top, MAX_PAGE),
        )
        events = [event_from_row(row_of(e)) for e in entities]
        # Events commit with no gap and retention removes a prefix: a first event beyond
        # after + 1 (or none though some were written) means retention passed the cursor.
        oldest = events[0].seq - 1 if events else last
        if after is not None and after < oldest:
            raise FeedExpired(oldest)
        if len(events) >= top or more:
            return events, events[-1].seq if events else after or 0
        return events, last

    def expire_events(self, before: datetime, limit: int) -> int:
        """Events older than `before` (their `at`), each owner's from its oldest on up to the
        first that is not, each deleted with its history row in batches. Table Storage has no
        index on `at`, so the owners are found by a cross-partition scan: each call reads at
        most a few service pages and keeps the scan's continuation in a row of its own, so
        calls of later timer runs go on from there and every partition is reached in turn."""
        found = self._scan_page(
            f"{prefix_filter(EVENT)} and at lt @before",
            {"before": to_rfc3339(before)},
            min(limit, MAX_PAGE),
        )
        removed = 0
        for pk in dict.fromkeys(entity["PartitionKey"] for entity in found):
            if removed >= limit:
                break
            removed += self._expire_prefix(pk, to_rfc3339(before), limit - removed)
        return removed

    def _expire_prefix(self, pk: str, before: str, limit: int) -> int:
        """Delete the partition's oldest events while they are older than `before`, in feed
        order (a batch at a time, oldest batch first), so what is kept has no gap behind it."""
        oldest, _ = self._one_page(
            f"PartitionKey eq @pk and {prefix_filter(EVENT)}", {"pk": pk}, min(limit, MAX_PAGE)
        )
        old = list(itertools.takewhile(lambda e: str(e["at"]) < before, oldest))
        for i in range(0, len(old), 50):  # 100 operations per transaction at most
            operations: list[Any] = []
            for row in old[i : i + 50]:
                operations.append(("delete", {"PartitionKey": pk, "RowKey": row["RowKey"]}))
                history = history_rk(row["accountId"], int(row["seq"]))
                operations.append(("delete", {"PartitionKey": pk, "RowKey": history}))
            try:
                self._transaction(operations)
            except TableTransactionError as exc:
                if transient(exc):
                    raise DependencyUnavailable("account store") from exc
                for op in operations:  # a row already gone fails the batch: one by one, in order
                    self._delete(op[1]["PartitionKey"], op[1]["RowKey"])
        return len(old)

    def _scan_page(self, filter_: str, params: dict[str, Any], size: int) -> list[Any]:
        """The retention scan's next rows across partitions, from where its last call stopped
        (a few service pages at most); where it stops now is kept for the next call."""
        state = self._get(*RETENTION_SCAN)
        token = json.loads(state["continuation"]) if state and state.get("continuation") else None

        def run(table: TableClient) -> tuple[list[Any], Any]:
            pages: Any = table.query_entities(
                filter_, parameters=params, results_per_page=size
            ).by_page(continuation_token=token)
            found: list[Any] = []
            for n, page in enumerate(pages, start=1):
                found.extend(page)
                if len(found) >= size or n >= _SCAN_PAGES or not pages.continuation_token:
                    break
            return found, pages.continuation_token

        found, resume = self._call(run)
        saved = {"PartitionKey": RETENTION_SCAN[0], "RowKey": RETENTION_SCAN[1], "Kind": "sweep",
                 "continuation": json.dumps(resume) if resume else ""}  # fmt: skip
        self._call(lambda table: table.upsert_entity(saved, mode=UpdateMode.REPLACE))
        return found


def meta_operations(
    pk: str, meta: Any, events: Sequence[Event], linked: int, connected: int
) -> list[Any]:
    """The owner's `meta` row moved on under its ETag, and the events' rows, for a transaction.

    The ETag check is what orders events: see the module's docstring."""
    change: dict[str, Any] = {
        "PartitionKey": pk,
        "RowKey": META,
        "linked": int(meta.get("linked") or 0) + linked,
        "connected": int(meta.get("connected") or 0) + connected,
    }
    operations: list[Any] = []
    seq = int(meta.get("seq") or 0)
    for event in events:
        seq += 1
        change["seq"] = seq
        row = {**event_to_row(event), "seq": seq}
        operations += [
            ("create", {"PartitionKey": pk, "RowKey": event_rk(seq), "Kind": "event", **row}),
            ("create", {"PartitionKey": pk, "RowKey": history_rk(event.account_id, seq),
                        "Kind": "history", **row}),
        ]  # fmt: skip
    update = ("update", change, {"mode": UpdateMode.MERGE, "etag": meta.metadata["etag"],
                                 "match_condition": MatchConditions.IfNotModified})  # fmt: skip
    return [update, *operations]
