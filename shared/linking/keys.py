"""Generating keys and reading their public records (the `generate_key` function's work).

Write order: the key is made in the key store of the current custody first (it signs its own
certificate there), then the record that points at it. A failure between the two leaves at most
a key without a record, which nothing can trip over; housekeeping removes it. Never a record
pointing at a missing key: when the record's write fails ambiguously (a timeout after the
service wrote it), the key stays.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from shared.adapters.accountstore.base import AccountStore
from shared.adapters.keystore.base import KeyLabels, KeyStore
from shared.context import AppContext
from shared.core import certificates
from shared.core.errors import AppError, ConfigurationError, NotFound, invalid
from shared.core.federation import AUDIENCE, KINDS, Federation, name_for, subject_for
from shared.core.model import KeyRecord
from shared.core.validation import Fields
from shared.support.guid import parse_guid
from shared.support.timefmt import utc_now

log = logging.getLogger("m365link.keys")


def create_key(ctx: AppContext, owner: str, body: dict[str, Any]) -> KeyRecord:
    fields = Fields(body)
    kind = fields.one_of("kind", KINDS, default="certificate")
    tenant_id = fields.guid("tenantId")
    application_id = fields.guid("applicationId")
    display_name = fields.text("displayName", max_len=64)
    if kind == "federated":  # no key pair of its own: nothing to size or date
        fields.absent("validityDays", "with kind federated (a federated credential never expires)")
        fields.absent("keySize", "with kind federated (the app's issuer key signs)")
    validity_days = fields.integer("validityDays", default=365, lo=1, hi=730)
    key_size = fields.one_of("keySize", certificates.KEY_SIZES, default=2048)
    fields.done()
    assert display_name is not None

    if kind == "federated":
        return store_federated(ctx, owner, tenant_id, application_id, display_name)
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


def store_federated(
    ctx: AppContext,
    owner: str,
    tenant_id: str,
    application_id: str,
    display_name: str,
    *,
    now: datetime | None = None,
) -> KeyRecord:
    """A federated credential: the issuer key exists first (the first one is made now and
    signs at once), then the record; nothing is made in the key store for the credential
    itself, so a failed record write leaves nothing behind."""
    if not ctx.settings.oidc_issuer:
        raise ConfigurationError(
            "federated credentials need OIDC_ISSUER: set it to the https URL the issuer is "
            "served at (for example https://<host name>/api/oidc)"
        )
    ctx.issuer().ensure()
    now = now or utc_now()
    key_id = str(uuid.uuid4())
    federation = Federation(
        issuer=ctx.settings.oidc_issuer,
        subject=subject_for(key_id),
        audience=AUDIENCE,
        name=name_for(display_name, key_id),
    )
    record = federated_record(key_id, owner, tenant_id, application_id, display_name, federation,
                              created_at=now, custody=ctx.keys.custody)  # fmt: skip
    ctx.accounts.add_key(record)
    log.info("federated credential created keyId=%s custody=%s", key_id, record.custody)
    return with_expiry(ctx, record)


def federated_record(
    key_id: str,
    owner: str,
    tenant_id: str,
    application_id: str,
    display_name: str,
    federation: Federation,
    *,
    created_at: datetime,
    custody: str,
) -> KeyRecord:
    """The record of a federated credential: no certificate; `custody` is the issuer key's."""
    return KeyRecord(
        key_id=key_id,
        owner=owner,
        tenant_id=tenant_id,
        application_id=application_id,
        display_name=display_name,
        thumbprint="",
        thumbprint_sha256="",
        subject="",
        not_before=None,
        not_after=None,
        key_size=None,
        certificate_pem="",
        created_at=created_at,
        custody=custody,
        kind="federated",
        federation=federation,
    )


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
    """The certificate file, or a federated credential as Graph takes it (`json`): body,
    content type and a safe file name."""
    if record.federation is not None:
        if fmt != "json":
            raise invalid("format", "must be json for a federated credential")
        body = record.federation.graph_body(_description(record))
        text = json.dumps(body, indent=2) + "\n"
        return text.encode("utf-8"), "application/json", f"{record.federation.name}.json"
    if fmt not in certificates.DOWNLOAD_FORMATS:
        raise invalid("format", "must be one of cer, pem, crt")
    body_bytes, content_type = certificates.export(record.certificate_pem, fmt)
    return body_bytes, content_type, certificates.download_filename(record.display_name, fmt)


def _description(record: KeyRecord) -> str:
    """Graph's `description` (at most 600 characters): what the credential is for."""
    return f"Read-only link to the governance portal: {record.display_name}"[:600]
