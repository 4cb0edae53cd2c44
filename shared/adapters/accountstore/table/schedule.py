"""The Table store's part of the health check's schedule: sets of rows that say when each
account is due, leased to the instance verifying it, and the chores instances take turns on.

The schedule is a partition of its own (`%schedule`) holding a set of rows per account, always
written together in one entity-group transaction (a set is never half-moved): its anchor
`acc_<owner>!<id>`, found by account (leases, the sweep), and its entries
`last_<last>_<owner>_<id>` and, with a renewal moment, `renew_<renew>_<owner>_<id>`: the two
orderings `take_due` reads (schedule.Place). Every row of a set carries the set's place, its
lease and the account version it was placed from. A set changed under a writer is read again
through the one optimistic-write loop; one it still cannot move is mended when met or swept.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import suppress
from datetime import datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableTransactionError, UpdateMode

from shared.adapters.accountstore.table.client import Stale, TableRows, transient
from shared.adapters.accountstore.table.layout import (
    HOUSEKEEPING,
    LAST,
    MAX_PAGE,
    RENEW,
    SCHEDULE,
    anchor_rk,
    partition_of,
)
from shared.core.errors import DependencyUnavailable
from shared.core.model import Account
from shared.core.schedule import Place, SchedulePolicy
from shared.support.optimistic import GaveUp, retry_lost_races

# A set whose account is missing is removed only when older than this: a link writes the set
# just before the account, and the timer may meet it in between.
_ORPHAN_ENTRY_SECONDS = 120


def set_rows(
    pk: str,
    owner: str,
    account_id: str,
    place: Place,
    version: int,
    lease: tuple[int, str] = (0, ""),
) -> list[dict[str, Any]]:
    """An account's rows in the schedule (see the module's docstring), its anchor first."""
    common = {"PartitionKey": SCHEDULE, "Kind": "scheduled", "owner": owner,
              "accountId": account_id, "last": place.last, "renew": place.renew or "",
              "version": version, "leaseUntil": lease[0], "leaseHolder": lease[1],
              "writtenAt": int(time.time())}  # fmt: skip
    keys = [anchor_rk(pk, account_id), f"{LAST}{place.last}_{pk}_{account_id}"]
    if place.renew is not None:
        keys.append(f"{RENEW}{place.renew}_{pk}_{account_id}")
    return [{**common, "RowKey": key} for key in keys]


def place_of(row: Any) -> Place:
    return Place(str(row["last"]), str(row["renew"] or "") or None)


def _set_keys(row: Any) -> list[str]:
    """The RowKeys of the set a schedule row belongs to."""
    owner = str(row["owner"])
    place = place_of(row)
    return [r["RowKey"] for r in set_rows(partition_of(owner), owner, row["accountId"], place, 0)]


class TableSchedule(TableRows):
    policy: SchedulePolicy

    def take_due(
        self, due_by: datetime, limit: int, lease: timedelta, holder: str
    ) -> list[Account]:
        moment = int(time.time())
        until = moment + int(lease.total_seconds())
        bounds = self.policy.due_by(due_by)
        met_before: set[str] = set()
        while met := [
            e for e in self._due_entries(bounds, limit, moment) if e["RowKey"] not in met_before
        ]:
            taken = [a for e in met if (a := self._take(e, until, holder, bounds, moment))]
            if taken:
                return taken
            # Each went to another instance, was moved by a write or mended on the way: leased
            # or no longer due, none is met again, so the next read looks further (a batch
            # lost to another instance is no reason to stop).
            met_before.update(e["RowKey"] for e in met)
        return []

    def _due_entries(self, bounds: tuple[str, str], limit: int, moment: int) -> list[Any]:
        """The `limit` stalest unleased entries: the first of each ordering, merged."""
        found: dict[tuple[str, str], Any] = {}
        for prefix, bound in zip((LAST, RENEW), bounds, strict=True):
            entries, _ = self._one_page(
                "PartitionKey eq @pk and RowKey ge @start and RowKey lt @end "
                "and leaseUntil lt @now",
                {"pk": SCHEDULE, "start": prefix, "end": f"{prefix}{bound}~", "now": moment},
                min(limit, MAX_PAGE),
            )
            for entry in entries:
                found.setdefault((str(entry["owner"]), str(entry["accountId"])), entry)
        interval = self.policy.interval
        return sorted(
            found.values(), key=lambda e: (place_of(e).due_under(interval), e["accountId"])
        )[:limit]

    def _take(
        self, entry: Any, until: int, holder: str, bounds: tuple[str, str], moment: int
    ) -> Account | None:
        """The met entry's account, leased to `holder`. None when another instance took it
        first, when the account turns out not due (its set was behind it: mended, lease
        ended), or when it is gone (an old set is removed; a young one, a link in flight,
        keeps this lease, so it is not met again before the lease lapses)."""
        if not self._lease(entry, until, holder):
            return None
        owner, account_id = str(entry["owner"]), str(entry["accountId"])
        account = self.get_account(owner, account_id)
        if account is None:
            if moment - int(entry.get("writtenAt") or 0) > _ORPHAN_ENTRY_SECONDS:
                self._drop_set(owner, account_id)  # unlinked, or a link that failed
            return None
        place = self.policy.place(account)
        if place == place_of(entry):
            return account
        # The account moved since its set did (a write between its two steps, or one that
        # stopped there): the set follows it, keeping the lease just taken.
        self._settle(account, place)
        last, renew = bounds
        if place.last <= last or (place.renew is not None and place.renew <= renew):
            return account
        self._release_one(owner, account_id, holder)
        return None

    def release(self, accounts: Sequence[Account], holder: str) -> None:
        for account in accounts:
            self._release_one(account.owner, account.id, holder)

    def _release_one(self, owner: str, account_id: str, holder: str) -> None:
        anchor = self._get(SCHEDULE, anchor_rk(partition_of(owner), account_id))
        if anchor is not None and anchor.get("leaseHolder") == holder:
            self._lease(anchor, 0, "")  # ETag-checked: a lease taken over since stays

    def _lease(self, row: Any, until: int, holder: str) -> bool:
        """Lease (`until` 0: free) the set `row` belongs to, under the ETag `row` was read
        with: False when the set changed since (another instance took it, a write moved it).
        Every change of a set writes each of its rows, so one row's ETag stands for all."""
        change = {"leaseUntil": until, "leaseHolder": holder}
        checked = {"mode": UpdateMode.MERGE, "etag": row.metadata["etag"],
                   "match_condition": MatchConditions.IfNotModified}  # fmt: skip
        operations = [
            ("update", {"PartitionKey": SCHEDULE, "RowKey": key, **change},
             checked if key == row["RowKey"] else {"mode": UpdateMode.MERGE})
            for key in _set_keys(row)
        ]  # fmt: skip
        return self._set_change(operations)

    def _set_change(self, operations: list[Any]) -> bool:
        """Change one or more sets in one transaction; False when a row changed, went or
        already exists."""
        try:
            self._transaction(operations)
        except TableTransactionError as exc:
            if transient(exc):
                raise DependencyUnavailable("account store") from exc
            return False
        return True

    def _settle(self, account: Account, place: Place) -> None:
        """Bring the account's set to `place` (this version's), unless it is there already or
        a newer version of the account placed it: whoever read an older account never moves
        the set back. A lease on the set stays where the set goes."""
        pk = partition_of(account.owner)

        def attempt() -> None:
            anchor = self._get(SCHEDULE, anchor_rk(pk, account.id))
            if anchor is None:
                rows = set_rows(pk, account.owner, account.id, place, account.version)
                written = self._set_change([("create", row) for row in rows])
            elif place_of(anchor) == place or int(anchor["version"]) >= account.version:
                return  # there already, or placed by a newer version
            else:
                written = self._move_set(anchor, place, account.version)
            if not written:
                raise Stale

        with suppress(GaveUp):  # the set changed under every try: mended when met or swept
            retry_lost_races(attempt, Stale)

    def _move_set(self, anchor: Any, place: Place, version: int) -> bool:
        """Move the set `anchor` (as read) heads to `place`, in one transaction under the
        anchor's ETag, its lease kept."""
        owner = str(anchor["owner"])
        lease = (int(anchor["leaseUntil"]), str(anchor.get("leaseHolder") or ""))
        rows = set_rows(partition_of(owner), owner, str(anchor["accountId"]), place, version, lease)
        keep = {row["RowKey"] for row in rows}
        checked = {"mode": UpdateMode.REPLACE, "etag": anchor.metadata["etag"],
                   "match_condition": MatchConditions.IfNotModified}  # fmt: skip
        operations: list[Any] = [
            ("update", row, checked)
            if row["RowKey"] == anchor["RowKey"]
            else ("upsert", row, {"mode": UpdateMode.REPLACE})
            for row in rows
        ]
        operations += [
            ("delete", {"PartitionKey": SCHEDULE, "RowKey": key})
            for key in _set_keys(anchor)
            if key not in keep
        ]
        return self._set_change(operations)

    def _drop_set(self, owner: str, account_id: str) -> None:
        """Remove the account's set (unlinked, or a link that failed)."""

        def attempt() -> None:
            anchor = self._get(SCHEDULE, anchor_rk(partition_of(owner), account_id))
            if anchor is None:
                return
            checked = {"etag": anchor.metadata["etag"],
                       "match_condition": MatchConditions.IfNotModified}  # fmt: skip
            operations = [
                ("delete", {"PartitionKey": SCHEDULE, "RowKey": key},
                 checked if key == anchor["RowKey"] else {})
                for key in _set_keys(anchor)
            ]  # fmt: skip
            if not self._set_change(operations):
                raise Stale

        with suppress(GaveUp):  # the set changed under every try: removed when met
            retry_lost_races(attempt, Stale)

    def claim_chore(self, name: str, now: datetime, every: timedelta) -> bool:
        if every <= timedelta(0):
            return True
        key = (HOUSEKEEPING, f"chore_{name}")
        row = self._get(*key)
        if row is not None and int(now.timestamp()) - int(row["lastRun"]) < every.total_seconds():
            return False
        entity = {"PartitionKey": key[0], "RowKey": key[1], "Kind": "chore",
                  "lastRun": int(now.timestamp())}  # fmt: skip
        if row is not None:  # False: another instance claimed it first
            return self._update_unchanged(entity, row, UpdateMode.REPLACE)
        try:
            self._call(lambda table: table.create_entity(entity))
        except ResourceExistsError:
            return False
        return True
