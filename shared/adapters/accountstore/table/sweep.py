"""The schedule's sweep on the Table store: a pass over every account that puts back in the
schedule an account whose set is missing or behind it, a page per step, shared by the instances
sweeping at once; and the upgrade of an earlier release's schedule, made by a first pass."""

from __future__ import annotations

import json
import time
from contextlib import suppress
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.adapters.accountstore.codec import account_from_row, join_report
from shared.adapters.accountstore.table.layout import (
    ACCOUNT,
    LEGACY_DUE,
    MAX_PAGE,
    SCHEDULE,
    SWEEP_STATE,
    anchor_rk,
    partition_of,
    prefix_filter,
    row_of,
    upper,
)
from shared.adapters.accountstore.table.schedule import TableSchedule, place_of, set_rows
from shared.core.model import Account

_SETS_PER_TRANSACTION = 30  # three rows each at most: 100 operations per transaction


def _accounts_page(table: TableClient, token: Any) -> tuple[list[Any], Any]:
    """One service page of every owner's accounts from `token`, and where the next starts."""
    pages: Any = table.query_entities(prefix_filter(ACCOUNT), results_per_page=MAX_PAGE).by_page(
        continuation_token=token
    )
    return list(next(pages, [])), pages.continuation_token


class TableSweep(TableSchedule):
    def prepare_schedule(self, stop_at: float) -> None:
        """Sets for the accounts of an earlier release (which had none, or one entry each by
        an interval-bound due time): a first pass of the sweep over every account, then those
        old entries removed. Bounded by `stop_at`; later timer runs go on."""
        state = self._get(SCHEDULE, SWEEP_STATE)
        if state is not None and state.get("ready"):
            return
        if state is None or not state.get("migrated"):
            while time.monotonic() < stop_at:
                if not self.sweep_schedule(stop_at, 1, restart=True):
                    break
            state = self._get(SCHEDULE, SWEEP_STATE)
            if state is None or not state.get("migrated"):
                return
        if self._drop_legacy_entries(stop_at):
            self._update_unchanged(
                {"PartitionKey": SCHEDULE, "RowKey": SWEEP_STATE, "ready": True},
                state,
                UpdateMode.MERGE,
            )

    def sweep_schedule(self, stop_at: float, pages: int, *, restart: bool) -> bool:
        """Go on with the pass over every account (`restart`: begin one if none is going on),
        at most `pages` service pages and until `stop_at`. Each account whose set is missing
        gets one, each whose set is behind it has it moved: whatever interleaving of writes,
        takes and crashes left an account out of the schedule, the next pass puts it back.
        Pages are claimed one at a time under the sweep's ETag, so instances sweeping at
        once share the pass. True while the pass is not over."""
        if restart:
            state = self._get(SCHEDULE, SWEEP_STATE)
            if state is None or not state.get("active"):
                begin = {"PartitionKey": SCHEDULE, "RowKey": SWEEP_STATE, "Kind": "sweep",
                         "active": True, "continuation": ""}  # fmt: skip
                self._call(lambda table: table.upsert_entity(begin, mode=UpdateMode.MERGE))
        more = True
        for _ in range(pages):
            if time.monotonic() >= stop_at:
                break
            more = self._sweep_step()
            if not more:
                break
        return more

    def _sweep_step(self) -> bool:
        """Claim the pass's next page of accounts (its continuation moved on under the
        sweep's ETag; an instance that lost that race lets the winner mend it) and mend it.
        False when no pass is going on any more."""
        state = self._get(SCHEDULE, SWEEP_STATE)
        if state is None or not state.get("active"):
            return False
        token = json.loads(state["continuation"]) if state.get("continuation") else None
        page, resume = self._call(lambda table: _accounts_page(table, token))
        change = {"PartitionKey": SCHEDULE, "RowKey": SWEEP_STATE, "active": bool(resume),
                  "continuation": json.dumps(resume) if resume else ""}  # fmt: skip
        if not resume:
            change["migrated"] = True
        if not self._update_unchanged(change, state, UpdateMode.MERGE):
            return True  # another instance claimed this page: go on from where it left
        self._mend_page(page)
        return bool(resume)

    def _mend_page(self, entities: list[Any]) -> None:
        """Give each account of a page its set, or move its set to where it is."""
        if not entities:
            return
        keys = [anchor_rk(e["PartitionKey"], e["RowKey"][len(ACCOUNT) :]) for e in entities]
        anchors = {
            a["RowKey"]: a
            for a in self._query(
                "PartitionKey eq @pk and RowKey ge @start and RowKey le @end",
                pk=SCHEDULE,
                start=min(keys),
                end=max(keys),
            )
        }
        missing: list[Account] = []
        for key, entity in zip(keys, entities, strict=True):
            account = account_from_row(join_report(row_of(entity)))
            anchor, place = anchors.get(key), self.policy.place(account)
            if anchor is None:
                missing.append(account)
            elif place_of(anchor) != place and int(anchor["version"]) < account.version:
                self._settle(account, place)
        for i in range(0, len(missing), _SETS_PER_TRANSACTION):
            batch = missing[i : i + _SETS_PER_TRANSACTION]
            operations = [
                ("create", row)
                for a in batch
                for row in set_rows(
                    partition_of(a.owner), a.owner, a.id, self.policy.place(a), a.version
                )
            ]
            if not self._set_change(operations):  # one was made meanwhile: one at a time
                for account in batch:
                    self._settle(account, self.policy.place(account))

    def _drop_legacy_entries(self, stop_at: float) -> bool:
        """Remove the second release's entries; True when none is left."""
        while time.monotonic() < stop_at:
            rows, _ = self._one_page(
                "PartitionKey eq @pk and RowKey ge @start and RowKey lt @end",
                {"pk": SCHEDULE, "start": LEGACY_DUE, "end": upper(LEGACY_DUE)},
                MAX_PAGE,
            )
            if not rows:
                return True
            for i in range(0, len(rows), 100):
                keys = [r["RowKey"] for r in rows[i : i + 100]]
                if not self._set_change(
                    [("delete", {"PartitionKey": SCHEDULE, "RowKey": k}) for k in keys]
                ):
                    for key in keys:  # one went meanwhile: one at a time
                        with suppress(ResourceNotFoundError):
                            self._delete(SCHEDULE, key)
        return False
