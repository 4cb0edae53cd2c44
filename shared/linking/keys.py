"""Generating keys and reading their public records (the `generate_key` function's work).

Write order: the key is made in the key store of the current custody first (it signs its own
certificate there), then the record that points at it. A failure between the two leaves at most
a key without a record, which nothing can trip over; housekeeping removes it. Never a record
pointing at a missing key: when the record's write fails ambiguously (a timeout after the
service wrote it), the key stays.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from shared.adapters.accountstore.base import AccountStore
from shared.adapters.keystore.base import KeyLabels, KeyStore
from shared.context import AppContext
from shared.core import certificates
from shared.core.errors import AppError, NotFound, invalid
from shared.core.model import KeyRecord
from shared.core.validation import Fields
from shared.support.guid import parse_guid
from shared.support.timefmt import utc_now

log = logging.getLogger("m365link.keys")


def create_key(ctx: AppContext, owner: str, body: dict[str, Any]) -> KeyRecord:
    fields = Fields(body)
    tenant_id = fields.guid("tenantId")
    application_id = fields.guid("applicationId")
    display_name = fields.text("displayName", max_len=64)
    validity_days = fields.integer("validityDays", default=365, lo=1, hi=730)
    key_size = fields.one_of("keySize", certificates.KEY_SIZES, default=2048)
    fields.done()
    assert display_name is not None

    return store_key(
        ctx,
        owner,
        tenant_id,
        application_id,
        display_name,
        validity_days=validity_days,
        key_size=key_size,
    )


def store_key(
    ctx: AppContext,
    owner: str,
    tenant_id: str,
    application_id: str,
    display_name: str,
    *,
    validity_days: int = 365,
    key_size: int = 2048,
    now: datetime | None = None,
) -> KeyRecord:
    """Make a key in the key store of the current custody (it signs its own certificate there),
    then the record that points at it. `now` backdates the key (tests, benchmarks)."""
    now = now or utc_now()
    key_id = str(uuid.uuid4())
    store = ctx.keys
    cert = store.create(
        key_id,
        KeyLabels(
            owner,
            tenant_id,
            application_id,
            "",  # the store records the thumbprint where it can (the certificate is made there)
            now + timedelta(days=validity_days),
            store=ctx.accounts.identity,
        ),
        key_size=key_size,
        certify=lambda signer, public: certificates.certify(
            signer, public, display_name, validity_days=validity_days, now=now
        ),
    )
    info = certificates.describe(cert)
    record = KeyRecord(
        key_id=key_id,
        owner=owner,
        tenant_id=tenant_id,
        application_id=application_id,
        display_name=display_name,
        thumbprint=info.thumbprint,
        thumbprint_sha256=info.thumbprint_sha256,
        subject=info.subject,
        not_before=info.not_before,
        not_after=info.not_after,
        key_size=info.key_size,
        certificate_pem=info.certificate_pem,
        created_at=now,
        custody=store.custody,
    )
    _add_record(ctx.accounts, store, record)
    log.info(
        "key created keyId=%s thumbprint=%s keySize=%d custody=%s",
        key_id,
        info.thumbprint,
        info.key_size,
        store.custody,
    )
    return with_expiry(ctx, record)


def _add_record(accounts: AccountStore, store: KeyStore, record: KeyRecord) -> None:
    """Write the record of a key just made in `store`; when that fails, undo the key where it
    is safe to (`_forget_secret`) and raise what the write raised."""
    try:
        accounts.add_key(record)
    except Exception:
        _forget_secret(accounts, store, record.owner, record.key_id)
        raise


def _forget_secret(accounts: AccountStore, store: KeyStore, owner: str, key_id: str) -> None:
    """Undo the first write, unless the record was written after all (a timeout after the store
    wrote it, or a retried insert refused as a duplicate) or the store cannot say: then the key
    stays, and housekeeping removes it with its record once the retention has passed."""
    try:
        written = accounts.get_key(owner, key_id) is not None
    except Exception:  # any doubt keeps the key
        written = True
    if written:
        log.warning("key record may exist; private key kept keyId=%s", key_id)
        return
    try:
        store.delete(key_id)  # made a moment ago in the current custody
    except AppError:
        log.warning("orphan private key left for housekeeping keyId=%s", key_id)


def with_expiry(ctx: AppContext, record: KeyRecord) -> KeyRecord:
    """The record as callers see it: its custody named (first-release records have none stored)
    and `expires_at` set while no account uses it (the key resource's `expiresAt`):
    housekeeping deletes it after UNLINKED_KEY_RETENTION_DAYS."""
    record = replace(record, custody=ctx.custody_of(record))
    if record.account_id is not None:
        return record
    retention = timedelta(days=ctx.settings.unlinked_key_retention_days)
    return replace(record, expires_at=record.unlinked_expiry(retention))


def get_key(ctx: AppContext, owner: str, key_id: str) -> KeyRecord:
    canonical = parse_guid(key_id)
    record = ctx.accounts.get_key(owner, canonical) if canonical else None
    if record is None or record.deleting:
        raise NotFound(f"no key {key_id!r}")
    return with_expiry(ctx, record)


def download(record: KeyRecord, fmt: str) -> tuple[bytes, str, str]:
    """The certificate file: body, content type and a safe file name."""
    if fmt not in certificates.DOWNLOAD_FORMATS:
        raise invalid("format", "must be one of cer, pem, crt")
    body, content_type = certificates.export(record.certificate_pem, fmt)
    return body, content_type, certificates.download_filename(record.display_name, fmt)
