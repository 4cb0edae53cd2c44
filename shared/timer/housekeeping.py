"""The timer's tidying after the accounts: expire old events, finish unlinks, drop keys never
linked, remove orphans.

Runs after every `health_check` run; each step is safe to repeat, so a run that stops midway (its
deadline, a store down) is finished by the next one.

A key never linked is deleted once UNLINKED_KEY_RETENTION_DAYS have passed, and never races a
Connect: its record is first marked `deleting` only if it is still unbound (in the same
transaction or ETag check `link` uses), so a key is either bound to the account that won or gone.
A private key without a record (a create that failed halfway) is removed only when it is tagged
with this app's account store, and not at all when there are suspiciously many of them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from shared.adapters.keystore.base import KeyStore
from shared.context import AppContext
from shared.core.errors import AppError
from shared.core.model import KeyRecord
from shared.linking.accounts import finish_key_deletion

if TYPE_CHECKING:
    from shared.timer.run import RunSummary

log = logging.getLogger("m365link.housekeeping")
ORPHAN_SECRET_MIN_AGE = timedelta(hours=1)  # younger ones may belong to a request in flight
# More orphans than this (and than there are key records) looks like the app pointed at a new or
# emptied table, not like creates that failed halfway: then nothing is swept.
ORPHAN_SWEEP_LIMIT = 10
# Events past HISTORY_RETENTION_DAYS removed per run at most (bounded work; the next run goes on).
EVENTS_PER_ROUND = 500
EVENT_ROUNDS = 10


def run(
    ctx: AppContext, summary: RunSummary, now: datetime, *, stop_at: float | None = None
) -> None:
    """Finish unlinks whose key deletion failed, drop keys no account used within the retention,
    and remove this store's private keys that no record points at. `stop_at` is a
    `time.monotonic()` deadline: no new deletion starts after it."""

    def out_of_time() -> bool:
        if stop_at is not None and time.monotonic() >= stop_at:
            log.info("housekeeping reached its deadline; the next run goes on")
            return True
        return False

    retention = timedelta(days=ctx.settings.unlinked_key_retention_days)
    try:
        if out_of_time():
            return
        # The timer runs every few minutes; the key store's sweep (every key record, every
        # stored key) runs once per HEALTH_CHECK_INTERVAL_HOURS, by one instance.
        every = timedelta(hours=ctx.settings.health_check_interval_hours)
        if not ctx.accounts.claim_chore("housekeeping", now, every):
            return
        _expire_events(ctx, now, out_of_time)
        records = list(ctx.accounts.list_keys())
        for key in records:
            if out_of_time():
                return
            if key.deleting:
                summary.deletions_finished += finish_key_deletion(ctx, key)
            elif (
                key.account_id is None
                and now > key.unlinked_expiry(retention)
                # False: a Connect bound it since the list was read; it stays.
                and ctx.accounts.mark_unused_key_deleting(key.owner, key.key_id)
            ):
                summary.keys_removed += finish_key_deletion(ctx, key)
        for store in ctx.key_stores():
            _sweep_orphans(ctx, store, summary, now, records, out_of_time)
    except AppError as error:
        log.warning("housekeeping stopped early: %s", error.detail)


def _expire_events(ctx: AppContext, now: datetime, out_of_time: Callable[[], bool]) -> None:
    before = now - timedelta(days=ctx.settings.history_retention_days)
    removed = 0
    for _ in range(EVENT_ROUNDS):
        if out_of_time():
            break
        count = ctx.accounts.expire_events(before, EVENTS_PER_ROUND)
        removed += count
        if count < EVENTS_PER_ROUND:
            break
    if removed:
        log.info("events past their retention removed count=%d", removed)


def _sweep_orphans(
    ctx: AppContext,
    store: KeyStore,
    summary: RunSummary,
    now: datetime,
    records: list[KeyRecord],
    out_of_time: Callable[[], bool],
) -> None:
    known = {k.key_id for k in records}
    orphans = [
        stored.key_id
        for stored in store.list()
        if stored.store == ctx.accounts.identity  # another environment's keys are not ours
        and stored.key_id not in known
        and stored.created_at is not None
        and now - stored.created_at >= ORPHAN_SECRET_MIN_AGE
    ]
    if len(orphans) > max(ORPHAN_SWEEP_LIMIT, len(records)):
        log.warning(
            "orphan sweep refused: %d private keys (custody %s) of this account store have no "
            "record while it holds %d key records; is the app pointed at a new or emptied "
            "table? Nothing was deleted",
            len(orphans),
            store.custody,
            len(records),
        )
        return
    for key_id in orphans:
        if out_of_time():
            return
        store.delete(key_id)
        summary.orphans_removed += 1
