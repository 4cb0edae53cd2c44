"""The timer's tidying after the accounts: expire old events, finish unlinks, drop keys never
linked, remove orphans.

Runs after every `health_check` run; each step is safe to repeat, so a run that stops midway (its
deadline, a store down) is finished by the next one.

A key never linked is deleted once UNLINKED_KEY_RETENTION_DAYS have passed, and never races a
Connect: its record is first marked `deleting` only if it is still unbound (in the same
transaction or ETag check `link` uses), so a key is either bound to the account that won or gone.
A private key without a record (a create that failed halfway) is removed only when it is tagged
with this app's account store, and not at all when there are suspiciously many of them. The
issuer's keys have records of their own (the issuer key ring's): a key one of them names is never
an orphan; one left without a record by a crash is, after the same grace.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from shared.adapters.accountstore.base import AccountStore, VersionConflict
from shared.adapters.keystore.base import KeyStore
from shared.context import AppContext
from shared.core.errors import AppError
from shared.core.model import KeyRecord
from shared.linking.accounts import finish_key_deletion

log = logging.getLogger("m365link.housekeeping")
ORPHAN_SECRET_MIN_AGE = timedelta(hours=1)  # younger ones may belong to a request in flight
# More orphans than this (and than there are key records) looks like the app pointed at a new or
# emptied table, not like creates that failed halfway: then nothing is swept.
ORPHAN_SWEEP_LIMIT = 10
# Events past HISTORY_RETENTION_DAYS removed per run at most (bounded work; the next run goes on).
EVENTS_PER_ROUND = 500
EVENT_ROUNDS = 10


@dataclass(frozen=True)
class HousekeepingCounts:
    """What one housekeeping run finished or removed (the timer's summary adds them up)."""

    keys_removed: int = 0
    deletions_finished: int = 0
    orphans_removed: int = 0


def run(ctx: AppContext, now: datetime, *, stop_at: float | None = None) -> HousekeepingCounts:
    """Finish unlinks whose key deletion failed, drop keys no account used within the retention,
    and remove this store's private keys that no record points at. `stop_at` is a
    `time.monotonic()` deadline: no new deletion starts after it. The counts include what was
    done before a stop (its deadline, a store down)."""
    out_of_time = partial(_out_of_time, stop_at)
    settings = ctx.settings
    done: Counter[str] = Counter()  # by the names of HousekeepingCounts' fields
    try:
        if out_of_time():
            return HousekeepingCounts()
        # The timer runs every few minutes; the key store's sweep (every key record, every
        # stored key) runs once per HEALTH_CHECK_INTERVAL_HOURS, by one instance.
        every = timedelta(hours=settings.health_check_interval_hours)
        if not ctx.accounts.claim_chore("housekeeping", now, every):
            return HousekeepingCounts()
        before = now - timedelta(days=settings.history_retention_days)
        _expire_events(ctx.accounts, before, out_of_time)
        records = list(ctx.accounts.list_keys())
        retention = timedelta(days=settings.unlinked_key_retention_days)
        if _finish_and_drop_keys(ctx, records, now, retention, out_of_time, done):
            # Read after the key records, before each store's list: a key made since is
            # younger than the orphans' grace.
            known = {k.key_id for k in records} | {k.key_id for k in ctx.accounts.issuer_keys()}
            for store in ctx.key_stores():
                _sweep_orphans(store, ctx.accounts.identity, now, known, out_of_time, done)
    except (AppError, VersionConflict) as error:
        log.warning("housekeeping stopped early: %s", error.detail)
    return HousekeepingCounts(**done)


def _out_of_time(stop_at: float | None) -> bool:
    if stop_at is not None and time.monotonic() >= stop_at:
        log.info("housekeeping reached its deadline; the next run goes on")
        return True
    return False


def _finish_and_drop_keys(
    ctx: AppContext,
    records: list[KeyRecord],
    now: datetime,
    retention: timedelta,
    out_of_time: Callable[[], bool],
    done: Counter[str],
) -> bool:
    """Finish the deletions left over and drop the keys unused past the retention; False when
    the time ran out first."""
    for key in records:
        if out_of_time():
            return False
        if key.deleting:
            done["deletions_finished"] += finish_key_deletion(ctx, key)
        elif (
            key.account_id is None
            and now > key.unlinked_expiry(retention)
            # False: a Connect bound it since the list was read; it stays.
            and ctx.accounts.mark_unused_key_deleting(key.owner, key.key_id)
        ):
            done["keys_removed"] += finish_key_deletion(ctx, key)
    return True


def _expire_events(
    accounts: AccountStore, before: datetime, out_of_time: Callable[[], bool]
) -> None:
    removed = 0
    for _ in range(EVENT_ROUNDS):
        if out_of_time():
            break
        count = accounts.expire_events(before, EVENTS_PER_ROUND)
        removed += count
        if count < EVENTS_PER_ROUND:
            break
    if removed:
        log.info("events past their retention removed count=%d", removed)


def _sweep_orphans(
    store: KeyStore,
    identity: str,
    now: datetime,
    known: set[str],
    out_of_time: Callable[[], bool],
    done: Counter[str],
) -> None:
    """Remove the private keys of this account store (`identity`) that no record (`known`: the
    key ids of the account keys' and the issuer keys' records) points at."""
    orphans = [
        stored.key_id
        for stored in store.list()
        if stored.store == identity  # another environment's keys are not ours
        and stored.key_id not in known
        and stored.created_at is not None
        and now - stored.created_at >= ORPHAN_SECRET_MIN_AGE
    ]
    if len(orphans) > max(ORPHAN_SWEEP_LIMIT, len(known)):
        log.warning(
            "orphan sweep refused: %d private keys (custody %s) of this account store have no "
            "record while it holds %d key records; is the app pointed at a new or emptied "
            "table? Nothing was deleted",
            len(orphans),
            store.custody,
            len(known),
        )
        return
    for key_id in orphans:
        if out_of_time():
            return
        store.delete(key_id)
        done["orphans_removed"] += 1
