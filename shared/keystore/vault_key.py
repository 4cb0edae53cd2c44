"""Custody `vault-key`: each private key is a non-exportable RSA key created inside Azure Key
Vault (`RSA-HSM` when KEY_VAULT_HSM is on), through azure-keyvault-keys. The certificate and every
client assertion are signed by Key Vault's `sign` operation; no copy of the key exists anywhere
else, not even in this process.

Keys are named `m365link-<keyId>`, tagged like the secrets of `vault-secret`, with key operations
`sign` and `verify` only and no release policy. A signer is kept per key (its public half and the
key's version), so a token request costs one `sign` and nothing else.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
from azure.keyvault.keys import KeyClient, KeyOperation, KeyVaultKey
from azure.keyvault.keys.crypto import CryptographyClient
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.guid import is_canonical_guid
from shared.keystore.base import Certify, KeyLabels, KeyStore, StoredKey, UnusableKey
from shared.keystore.signing_key import SigningOnlyKey
from shared.keystore.vault_common import (
    CLIENT_OPTIONS,
    PREFIX,
    tags,
    vault_error,
    vault_name,
    verifies_challenge,
)

log = logging.getLogger("m365link.keystore")
NEEDED_ROLE = "Key Vault Crypto Officer"
PROBE_KEY = "m365link-health-probe"  # a name no key ever has: 404 proves the vault answered
_MAX_SIGNERS = 4096  # a few hundred bytes each: the public half and a client, no key material


class KeyVaultKeyStore(KeyStore):
    custody = "vault-key"
    backend = "keyvault"

    def __init__(self, vault_url: str, credential: TokenCredential, *, hsm: bool = False) -> None:
        self._credential = credential
        self._hsm = hsm
        self._verify = verifies_challenge(vault_url)
        self._client = KeyClient(
            vault_url, credential, verify_challenge_resource=self._verify, **CLIENT_OPTIONS
        )
        self._signers: OrderedDict[str, SigningOnlyKey] = OrderedDict()
        self._lock = threading.Lock()

    def _error(self, exc: Exception) -> Exception:
        return vault_error(exc, NEEDED_ROLE)

    def _signing_key(self, key: KeyVaultKey) -> SigningOnlyKey:
        jwk = key.key
        kty, n, e = (getattr(jwk, name, None) for name in ("kty", "n", "e"))  # JWK members
        if kty not in ("RSA", "RSA-HSM") or not isinstance(n, bytes) or not isinstance(e, bytes):
            raise UnusableKey("the vault key is not an RSA key")
        public = rsa.RSAPublicNumbers(
            int.from_bytes(e, "big"), int.from_bytes(n, "big")
        ).public_key()
        crypto = CryptographyClient(
            key, self._credential, verify_challenge_resource=self._verify, **CLIENT_OPTIONS
        )
        # The SDK's RSAPrivateKey whose sign() is Key Vault's sign; wrapped so that it can do
        # nothing else and its failures are the app's errors.
        return SigningOnlyKey(crypto.create_rsa_private_key(), public, on_error=self._error)

    def _remember(self, key_id: str, signer: SigningOnlyKey) -> None:
        with self._lock:
            self._signers[key_id] = signer
            self._signers.move_to_end(key_id)
            while len(self._signers) > _MAX_SIGNERS:
                self._signers.popitem(last=False)

    def create(
        self, key_id: str, labels: KeyLabels, *, key_size: int, certify: Certify
    ) -> x509.Certificate:
        try:
            key = self._client.create_rsa_key(
                vault_name(key_id),
                size=key_size,
                hardware_protected=self._hsm,
                key_operations=[KeyOperation.sign, KeyOperation.verify],
                tags=tags(key_id, labels),
                expires_on=labels.not_after,
                enabled=True,
            )
        except AzureError as exc:
            raise self._error(exc) from exc
        try:
            signer = self._signing_key(key)
            cert = certify(signer, signer.public_key())
        except BaseException:
            self._delete_quietly(key_id)  # a key without a certificate is of no use
            raise
        self._remember(key_id, signer)
        return cert

    def signer(self, key_id: str) -> rsa.RSAPrivateKey:
        with self._lock:
            cached = self._signers.get(key_id)
            if cached is not None:
                self._signers.move_to_end(key_id)
                return cached
        try:
            key = self._client.get_key(vault_name(key_id))  # the public half and its version
        except AzureError as exc:
            raise self._error(exc) from exc
        signer = self._signing_key(key)
        self._remember(key_id, signer)
        return signer

    def _delete_quietly(self, key_id: str) -> None:
        try:
            self.delete(key_id)
        except Exception as exc:  # left as an orphan for housekeeping
            log.warning(
                "vault key left for housekeeping keyId=%s reason=%s", key_id, type(exc).__name__
            )

    def delete(self, key_id: str) -> None:
        with self._lock:
            self._signers.pop(key_id, None)
        try:
            # The DELETE is sent at once; the poller would only wait for the soft delete.
            self._client.begin_delete_key(vault_name(key_id))
        except ResourceNotFoundError:
            return
        except HttpResponseError as exc:
            if exc.status_code == 409:  # already being deleted
                return
            raise self._error(exc) from exc
        except AzureError as exc:
            raise self._error(exc) from exc

    def list(self) -> Iterator[StoredKey]:
        try:
            found = [
                StoredKey(p.name[len(PREFIX) :], p.created_on, (p.tags or {}).get("store"))
                for p in self._client.list_properties_of_keys()
                if p.name and p.name.startswith(PREFIX) and is_canonical_guid(p.name[len(PREFIX) :])
            ]
        except AzureError as exc:
            raise self._error(exc) from exc
        return iter(found)

    def ping(self) -> None:
        try:
            self._client.get_key(PROBE_KEY)
        except ResourceNotFoundError:
            return
        except AzureError as exc:
            raise self._error(exc) from exc
