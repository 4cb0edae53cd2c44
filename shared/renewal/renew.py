"""Renewal as the routes and the timer drive it: start, cancel, PATCH's hand-over, and the
timer's upkeep.

Each step writes the rotation first (`shared.renewal.rotation`, `shared.renewal.new_rotation`)
and only then makes the Graph writes of automatic renewal that follow from it
(`shared.renewal.tenant_writes`): a start that fails changes nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from shared.context import AppContext
from shared.core.model import Account, Event
from shared.linking import accounts, history
from shared.renewal import new_rotation
from shared.renewal import rotation as rotations
from shared.renewal.credentials import CERTIFICATE, proof_key, remove_federated_steps
from shared.renewal.handover import follow_renewal
from shared.renewal.new_rotation import NewKey
from shared.renewal.tenant_writes import (
    push_new_certificate,
    remove_from_registration,
    remove_replaced,
    take_back,
)
from shared.support.timefmt import to_rfc3339, utc_now

log = logging.getLogger("m365link.renewal")


def patch(
    ctx: AppContext, owner: str, account_id: str, body: dict[str, Any], if_match: str | None
) -> Account:
    """PATCH /api/accounts/{id}: the rotation follows `certificateRenewal` in the same write
    (`handover.follow_renewal`); one automatic renewal took over gets its addKey at once."""
    patched = accounts.patch_account(ctx, owner, account_id, body, if_match, follow=follow_renewal)
    return push_new_certificate(ctx, patched)


def start(ctx: AppContext, owner: str, account_id: str, body: dict[str, Any]) -> Account:
    """POST /api/accounts/{id}/rotation: a renewal, or a move to the other kind of credential
    (`kind`)."""
    account = accounts.get_account(ctx, owner, account_id)
    if account.rotation is not None and account.rotation.in_progress:
        raise new_rotation.in_progress_conflict(account)
    return _begin(ctx, account, new_rotation.options(ctx, account, body))


def _begin(
    ctx: AppContext, account: Account, new: NewKey, reason: list[Event] | None = None
) -> Account:
    """Start a rotation; only once it has started, the Graph writes that follow (a failed start
    changes nothing): addKey of its certificate, and removeKey of the certificate whose key the
    start retired early (`begin` releases that key in its write; it is deleted after its
    removeKey, whose proof it may sign)."""
    started = new_rotation.begin(ctx, account, new, reason=reason)
    account = started.account
    replaced = started.replaced
    try:
        account = push_new_certificate(ctx, account)
        if replaced is not None:
            account = remove_replaced(ctx, account, replaced)
    finally:
        if replaced is not None:
            new_rotation.retire_replaced_early(ctx, account, replaced)
    return account


def cancel(ctx: AppContext, owner: str, account_id: str) -> Account:
    """DELETE /api/accounts/{id}/rotation: also takes back a certificate automatic renewal had
    added (best effort: the key behind it is deleted either way)."""
    account = rotations.cancel(ctx, accounts.get_account(ctx, owner, account_id))
    rotation = account.rotation
    if rotation is not None and rotation.add_key == "done":
        account = take_back(ctx, account, rotation, landed=True)
    return account


# --- the timer ---------------------------------------------------------------------------
def upkeep(ctx: AppContext, account: Account, now: datetime | None = None) -> Account:
    """What the timer does for an account's renewal before verifying it: fail a rotation
    whose new certificate expired, retry automatic renewal's addKey, retire the replaced key
    after KEY_RETIREMENT_DAYS (removeKey first, when automatic), and start a rotation when the
    certificate enters the CERT_EXPIRY_WARNING_DAYS window. `account` is the timer's read: it
    only says what may be due; each step is decided again on a fresh read. `now` is
    injectable (tests)."""
    now = now or utc_now()
    rotation = account.rotation
    if rotation is not None and rotation.in_progress:
        if rotation.not_after is not None and now >= rotation.not_after:
            return rotations.fail_if_expired(ctx, account, now)
        return push_new_certificate(ctx, account)
    if rotations.retirement_due(account, now):
        account = _retire(ctx, account, now)
    # The timer never starts a renewal for a federated credential: it does not expire.
    window = account.renewal_window(timedelta(days=ctx.settings.cert_expiry_warning_days))
    if window is not None and now >= window and not _in_progress(account):
        assert account.certificate_not_after is not None
        days, size = new_rotation.default_validity(ctx, account)
        renewal = NewKey(CERTIFICATE, days, size)
        expiring = history.event(
            account.owner,
            account.id,
            "certificate_expiring",
            status=account.status,
            detail=f"certificate {account.thumbprint} expires on "
            f"{to_rfc3339(account.certificate_not_after)}; a renewal was started",
        )
        account = _begin(ctx, account, renewal, reason=[expiring])
    return account


def _in_progress(account: Account) -> bool:
    return account.rotation is not None and account.rotation.in_progress


def _retire(ctx: AppContext, account: Account, now: datetime) -> Account:
    """Retire the replaced key, decided on a fresh read; with automatic renewal on at that
    moment, removeKey of its certificate first (the proof signed by the account's certificate,
    or by the replaced certificate's own key when the account is federated now). A replaced
    federated credential: the app stops signing for it, and `detail` asks the customer to
    remove it from the app registration (the app cannot)."""
    current = rotations.fresh(ctx, account)
    rotation = current.rotation
    if not rotations.retirement_due(current, now):
        return current
    assert rotation is not None
    if not rotation.previous_thumbprint:  # a federated credential
        record = ctx.accounts.get_key(current.owner, rotation.previous_key_id)
        steps = remove_federated_steps(record, rotation, current.application_id)
        detail = f"Completed; the app no longer signs for the previous credential. {steps}"
        return rotations.retire(ctx, current, now, detail=detail)
    if rotation.remove_key != "pending" or current.certificate_renewal != "automatic":
        return rotations.retire(ctx, current, now)
    signer = proof_key(current, rotation.previous_key_id, rotation.previous_thumbprint)
    write = remove_from_registration(ctx, current, rotation.previous_thumbprint, signer)
    if write.outcome == "transient":
        log.info("replaced certificate not removed yet accountId=%s", current.id)
        return current  # the key stays until removeKey answers; the next run tries again
    if write.outcome == "done":
        detail = (
            f"Completed; the previous certificate {rotation.previous_thumbprint} was removed "
            "from the app registration and its key deleted."
        )
    else:
        detail = (
            f"Completed; the previous key was deleted. {write.words()} Remove certificate "
            f"{rotation.previous_thumbprint} from the app registration by hand."
        )
    return rotations.retire(ctx, current, now, remove_key=write.outcome, detail=detail)
