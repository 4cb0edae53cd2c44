"""Starting a rotation: its options (POST /rotation's, or the replaced key's), its new key, and
the one write that begins it.

The new key is of either kind (`kind`, by default the account's current credential): a
certificate, or a federated credential, so a rotation also moves an account between the two.

The new key is made first and bound to the account in the write that records the rotation, so
it is never an unlinked key that retention could take; a start that fails leaves the account,
and the key in its retirement window, as they were.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from shared.adapters.accountstore import KeyChanges
from shared.context import AppContext
from shared.core import certificates
from shared.core.errors import Conflict, invalid
from shared.core.federation import KINDS
from shared.core.model import Account, Event, KeyRecord, Rotation
from shared.core.validation import Fields
from shared.linking import history
from shared.linking.accounts import delete_keys
from shared.linking.keys import store_federated, store_key, with_expiry
from shared.renewal import counted
from shared.renewal.credentials import CERTIFICATE, FEDERATED, app_adds, described
from shared.renewal.handover import awaiting
from shared.renewal.rotation import Change, retiring_key, transition
from shared.support.timefmt import utc_now

log = logging.getLogger("m365link.rotation")
MAX_VALIDITY_DAYS = 730


# --- its options ---------------------------------------------------------------------------
def default_validity(ctx: AppContext, account: Account) -> tuple[int, int]:
    """(validity days, key size) of the key being replaced, the length bounded to
    [2 x CERT_EXPIRY_WARNING_DAYS, 730] so a renewal is never due again at once."""
    record = ctx.accounts.get_key(account.owner, account.key_id)
    if record is None or record.not_after is None or record.not_before is None:
        days, size = 365, 2048  # no record, or a federated credential: the defaults
    else:
        days, size = (record.not_after - record.not_before).days, record.key_size or 2048
    return min(max(days, shortest_validity(ctx)), MAX_VALIDITY_DAYS), size


def shortest_validity(ctx: AppContext) -> int:
    """Twice CERT_EXPIRY_WARNING_DAYS (at least a day): a renewal's certificate is never inside
    the warning window, and so never due for renewal, the moment it is made."""
    return max(2 * ctx.settings.cert_expiry_warning_days, 1)


@dataclass(frozen=True)
class NewKey:
    """What a rotation's new key is: a certificate (its validity and key size) or a federated
    credential (neither)."""

    kind: str = CERTIFICATE
    validity_days: int | None = None
    key_size: int | None = None


def options(ctx: AppContext, account: Account, body: dict[str, Any]) -> NewKey:
    """`kind`, `validityDays` and `keySize` of POST /rotation: the kind defaults to the account's
    credential, a certificate's options to the replaced key's; a federated credential takes
    neither (a 400 naming the field)."""
    fields = Fields(body)
    kind = fields.one_of("kind", KINDS, default=account.credential)
    if kind == FEDERATED:
        fields.absent("validityDays", "with kind federated (a federated credential never expires)")
        fields.absent("keySize", "with kind federated (the app's issuer key signs)")
        fields.done()
        return NewKey(FEDERATED)
    days, size = default_validity(ctx, account)
    shortest = shortest_validity(ctx)
    days = fields.integer("validityDays", default=days, lo=1, hi=MAX_VALIDITY_DAYS)
    size = fields.one_of("keySize", certificates.KEY_SIZES, default=size)
    fields.done()
    if days < shortest:
        raise invalid(
            "validityDays",
            f"must be at least {shortest} days (twice CERT_EXPIRY_WARNING_DAYS), or the renewal "
            "would be due again at once",
        )
    return NewKey(CERTIFICATE, days, size)


def in_progress_conflict(account: Account) -> Conflict:
    assert account.rotation is not None
    return Conflict(
        "a renewal of this account is already in progress; cancel it first or finish it",
        account_id=account.id,
        key_id=account.rotation.key_id,
    )


# --- beginning it ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Started:
    """A rotation begun: the account as written, and the last rotation when that write retired
    the key it had replaced (still in its retirement window: its credential may be left on the
    app registration). That key is released but not deleted yet: `retire_replaced_early` deletes
    it once what it must sign (a removeKey's proof) is done."""

    account: Account
    replaced: Rotation | None = None


def begin(
    ctx: AppContext,
    account: Account,
    new: NewKey,
    *,
    now: datetime | None = None,
    reason: list[Event] | None = None,
) -> Started:
    """Make the new key and start the rotation: the key is bound to the account in the same
    write that records the rotation (so it is never an unlinked key that retention could
    take). Raises Conflict when one is in progress (also when another request started one
    meanwhile: the key made here is then deleted again). Nothing else changes before that
    write: a start that fails (the key store down, a 409) leaves the account, and the key in
    its retirement window, as they were."""
    if account.rotation is not None and account.rotation.in_progress:
        raise in_progress_conflict(account)
    now = now or utc_now()
    record = _new_key(ctx, account, new, now)
    key = with_expiry(ctx, replace(record, account_id=account.id)).to_resource()
    try:
        saved, replaced = _write_start(ctx, account, key, now, reason or [])
    except Exception:
        _discard(ctx, account.owner, record.key_id)
        raise
    counted.rotation("started", record.kind)
    log.info(
        "rotation started accountId=%s keyId=%s kind=%s renewal=%s",
        account.id,
        record.key_id,
        record.kind,
        saved.certificate_renewal,
    )
    return Started(saved, replaced)


def _new_key(ctx: AppContext, account: Account, new: NewKey, now: datetime) -> KeyRecord:
    """The rotation's new key, named as the key it replaces (or the account)."""
    previous = ctx.accounts.get_key(account.owner, account.key_id)
    name = previous.display_name if previous else account.display_name
    if new.kind == FEDERATED:
        return store_federated(
            ctx, account.owner, account.tenant_id, account.application_id, name, now=now
        )
    assert new.validity_days is not None and new.key_size is not None
    return store_key(
        ctx,
        account.owner,
        account.tenant_id,
        account.application_id,
        name,
        validity_days=new.validity_days,
        key_size=new.key_size,
        now=now,
    )


def _write_start(
    ctx: AppContext, account: Account, key: dict[str, Any], now: datetime, reason: list[Event]
) -> tuple[Account, Rotation | None]:
    """The write that starts the rotation to `key`, decided on the account as it is now: the
    account as written, and the last rotation when that write retired the key it replaced."""
    replaced: list[Rotation] = []  # by the decision that was written

    def decide(current: Account) -> Change:
        if current.rotation is not None and current.rotation.in_progress:
            raise in_progress_conflict(current)
        # The new rotation replaces the record of the last one: a key that one replaced and
        # that is still in its retirement window is retired now, in this write, or no rotation
        # would name it any more and neither the timer nor unlink would ever delete it.
        retired = retiring_key(current)
        replaced[:] = [current.rotation] if retired and current.rotation else []
        return _starting(current, key, now, reason, retired)

    saved = transition(ctx, account, decide)
    return saved, replaced[0] if replaced else None


def _starting(
    current: Account, key: dict[str, Any], now: datetime, reason: list[Event], retired: str | None
) -> Change:
    """The write that starts the rotation to `key` on the account as it is now: the rotation
    (its renewal as the account has it now), the new key bound, the retiring one released."""
    automatic = current.certificate_renewal == "automatic"
    key_id, kind = str(key["keyId"]), str(key.get("kind") or CERTIFICATE)
    started = Rotation(
        key=key,
        previous_key_id=current.key_id,
        previous_thumbprint=current.thumbprint,
        status="awaiting_upload",
        renewal=current.certificate_renewal,
        started_at=now,
        detail=awaiting(key, current.credential, automatic),
        # addKey only for a certificate, signed by the current one: never attempted otherwise.
        add_key="pending" if automatic and app_adds(kind, current.credential) else None,
    )
    event = history.event(
        current.owner,
        current.id,
        "rotation_started",
        status=current.status,
        detail=_started_words(current, key),
    )
    return Change(
        current.updated(rotation=started, updated_at=utc_now()),
        [*reason, event],
        KeyChanges(bind=(key_id,), release=(retired,) if retired else ()),
    )


def _started_words(current: Account, key: dict[str, Any]) -> str:
    """The rotation_started event's words: the new credential, and the one it moves from when
    the kind changes."""
    if key.get("kind") == FEDERATED or current.federated:
        was = "federated credential" if current.federated else f"certificate {current.thumbprint}"
        return f"new {described(key)} to replace the {was}"
    return f"new certificate {key['thumbprint']} valid until {key['notAfter']}"


def retire_replaced_early(ctx: AppContext, account: Account, replaced: Rotation) -> None:
    """Delete the key the start released (the one the last rotation had replaced)."""
    retired_key = replaced.previous_key_id
    delete_keys(ctx, account.owner, (retired_key,))
    log.info("replaced key retired early accountId=%s keyId=%s", account.id, retired_key)


def _discard(ctx: AppContext, owner: str, key_id: str) -> None:
    """A new key no rotation got: deleted now if it can be, else retention removes it."""
    try:
        if ctx.accounts.mark_unused_key_deleting(owner, key_id):
            delete_keys(ctx, owner, (key_id,))
    except Exception:
        log.warning("unused renewal key left for retention keyId=%s", key_id)
