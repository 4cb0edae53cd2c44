"""The issuer key's two writes, each a few steps any of which a crash may interrupt: making a
key (claim the generation, make the key, publish its public half) and retiring one (out of the
JWKS, key deleted, record deleted). Whatever step a crash stops at, the next pass finishes or
undoes it (shared.core.issuer_keys decides which), and no step ever removes a key that may sign.

`hook(name)` runs between the steps (tests raise from it to crash there, or hold it to make
two instances interleave): `decided`, `claimed`, `created`, `published`, `marked`, `unkeyed`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.adapters.accountstore.base import IssuerKeyRecords, VersionConflict
from shared.adapters.issuer.public_key import public_members
from shared.adapters.keystore.base import KeyLabels, KeyStore
from shared.core import certificates
from shared.core.issuer_keys import CLAIMED, DELETING, PUBLISHED, IssuerKey, Step, use_from

log = logging.getLogger("m365link.issuer")
KEY_SIZE = 2048
ISSUER_OWNER = "%issuer"  # the key store's owner label of issuer keys: no owner's name has '%'
# A key's expiry in Key Vault outlives any life it can have: two rotations at the longest
# OIDC_KEY_ROTATION_DAYS (730; an operator may lengthen it while the key signs), and a month.
KEY_LIFETIME = timedelta(days=2 * 730 + 30)

Hook = Callable[[str], None]


@dataclass
class Writer:
    """What the steps write to: the records, the key store of each custody, the custody of
    new keys, this account store's identity (the key store's label) and the clock."""

    records: IssuerKeyRecords
    key_store: Callable[[str], KeyStore]
    custody: str
    store_identity: str
    now: Callable[[], datetime]
    hook: Hook

    def take(self, step: Step) -> str:
        """Do `step`; the name of what was done. Raises VersionConflict when another instance
        changed the records first (its pass does the work)."""
        self.hook("decided")
        if step.action == "create":
            self.create(step.generation, at_once=step.at_once)
            return "published"
        assert step.record is not None
        self.retire(step.record)
        return "retired"

    def create(self, generation: int, *, at_once: bool) -> IssuerKey:
        key_id = str(uuid.uuid4())
        claimed_at = self.now()
        mine = self.records.claim_issuer_key(
            IssuerKey(generation, key_id, self.custody, CLAIMED, claimed_at)
        )
        if mine is None:
            raise VersionConflict(f"issuer key {generation}")  # another instance claimed it
        self.hook("claimed")
        store = self.key_store(self.custody)
        try:
            cert = store.create(
                key_id, self._labels(claimed_at), key_size=KEY_SIZE, certify=_certify(claimed_at)
            )
        except Exception:
            self._undo_claim(mine)
            raise
        self.hook("created")
        public = cert.public_key()
        assert isinstance(public, rsa.RSAPublicKey)
        kid, n, e = public_members(public)
        at = self.now()
        done = replace(mine, state=PUBLISHED, kid=kid, n=n, e=e, published_at=at,
                       use_from=use_from(at, at_once))  # fmt: skip
        try:
            done = self.records.update_issuer_key(done)
        except VersionConflict:
            # Our claim was judged stale and retired meanwhile: the key is no one's.
            store.delete(key_id)
            raise
        self.hook("published")
        log.info("issuer key published generation=%d kid=%s", generation, kid)
        return done

    def retire(self, record: IssuerKey) -> None:
        """Out of the JWKS (marked `deleting` under the version read), then the private key
        deleted, then the record: each step repeatable, so a pass that finds the mark
        finishes the removal."""
        if record.state != DELETING:
            record = self.records.update_issuer_key(replace(record, state=DELETING))
            self.hook("marked")
        self.key_store(record.custody).delete(record.key_id)
        self.hook("unkeyed")
        self.records.delete_issuer_key(record)
        log.info("issuer key retired generation=%d kid=%s", record.generation, record.kid or "-")

    def _labels(self, now: datetime) -> KeyLabels:
        return KeyLabels(ISSUER_OWNER, "", "", "", now + KEY_LIFETIME, store=self.store_identity)

    def _undo_claim(self, mine: IssuerKey) -> None:
        """A key that could not be made: its claim goes at once rather than after going stale
        (if this fails too, the claim goes stale and a later pass retires it)."""
        try:
            self.retire(mine)
        except Exception as exc:
            log.warning("issuer key claim left to go stale reason=%s", type(exc).__name__)


def _certify(now: datetime) -> Callable[[rsa.RSAPrivateKey, rsa.RSAPublicKey], x509.Certificate]:
    """The key store makes a key by certifying it: a throw-away certificate, whose public key
    is all the issuer keeps."""

    def certify(signer: rsa.RSAPrivateKey, public: rsa.RSAPublicKey) -> x509.Certificate:
        return certificates.certify(signer, public, "m365link issuer", validity_days=1, now=now)

    return certify
