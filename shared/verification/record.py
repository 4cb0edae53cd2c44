"""Records a verification report on its account (`record`).

Reports are ordered by when they started (`startedAt`, to the millisecond): of two reports for
one account the one that started later is kept, whichever finishes first. The write goes through
the one optimistic-write loop (`shared.support.optimistic`): a concurrent update is re-read and
decided again, never overwritten.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from shared.adapters.accountstore.base import NO_KEY_CHANGES, VersionConflict
from shared.context import AppContext
from shared.core.errors import NotFound
from shared.core.model import Account
from shared.linking import history
from shared.renewal import counted
from shared.renewal import rotation as rotations
from shared.support.optimistic import retry_lost_races
from shared.support.timefmt import from_rfc3339, utc_now
from shared.verification.checks.report import Report

log = logging.getLogger("m365link.verify")


@dataclass(frozen=True)
class Recorded:
    """The account after `record`, and the report as recorded: its `rotation` is the rotation as
    it stands after the write. A report not recorded (a later one is already there, or it speaks
    for a withdrawn rotation key) comes back as it was given, beside the account as found."""

    account: Account
    report: Report


def started_at(report: dict[str, Any]) -> datetime:
    """When a stored report started: `startedAt`, or for a report recorded before it existed
    its whole-second `checkedAt`."""
    return from_rfc3339(str(report.get("startedAt") or report["checkedAt"]))


def record(
    ctx: AppContext,
    account: Account,
    report: Report,
    *,
    switch_to: str | None = None,
) -> Recorded:
    """Store the report on the account. `error` keeps the account's status and `updatedAt`
    (only `lastVerification` and `lastVerifiedAt` change); a report that started before the one
    stored never replaces it; a concurrent update is re-read, never overwritten. Raises
    VersionConflict (a 503 with Retry-After at the edge) when the account stays contended (the
    write policy's tries and time, never past the deadline of the unit of work).

    `switch_to`: Entra accepted this rotation key. The account switches to it in the same
    write as the report (key, thumbprint, expiry, the rotation completed), decided again on
    every re-read: an instance that lost the race finds the switch done and only records its
    report, so one account is switched exactly once."""
    try:
        return retry_lost_races(
            lambda: _record_once(ctx, account, report, switch_to),
            VersionConflict,
            gave_up=lambda: VersionConflict(account.id),
        )
    except VersionConflict:
        log.warning("report not recorded, account contended accountId=%s", account.id)
        raise


def _record_once(
    ctx: AppContext, account: Account, report: Report, switch_to: str | None
) -> Recorded:
    """One read-decide-write; raises VersionConflict when the account changed meanwhile."""
    current = ctx.accounts.get_account(account.owner, account.id)
    if current is None:
        raise NotFound(f"no account {account.id!r}")
    if current.last_verification and started_at(current.last_verification) > report.started_at:
        return Recorded(current, report)  # a report that started later is already there
    switch = rotations.switch(ctx, current, switch_to) if switch_to else None
    if switch_to and switch is None and current.key_id != switch_to:
        # The rotation was cancelled or failed meanwhile: this report speaks for a key
        # the account no longer has, and is not recorded.
        log.info("report of a withdrawn rotation key not recorded accountId=%s", account.id)
        return Recorded(current, report)
    base = switch.account if switch else current
    recorded = replace(
        report, rotation=base.rotation.to_resource(base.id) if base.rotation else None
    )
    is_error = report.status == "error"
    changed = base.updated(
        status=current.status if is_error else report.status,
        last_verification=recorded.to_json(),
        last_verified_at=report.checked_at,
        updated_at=current.updated_at if is_error and not switch else utc_now(),
    )
    events = [
        *(switch.events if switch else []),
        *history.verified(current, changed, report.status),
    ]
    try:
        saved = ctx.accounts.update_account(
            changed, events, switch.keys if switch else NO_KEY_CHANGES
        )
    except LookupError:
        raise NotFound(f"no account {account.id!r}") from None
    if switch:
        counted.rotation("completed", saved.credential)
        log.info(
            "account switched to its renewed key accountId=%s keyId=%s", account.id, saved.key_id
        )
    if saved.status != current.status:
        log.info(
            "account status changed accountId=%s from=%s to=%s",
            account.id,
            current.status,
            saved.status,
        )
    return Recorded(saved, recorded)
