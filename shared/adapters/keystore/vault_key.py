"""Custody `vault-key`: each private key is a non-exportable RSA key created inside Azure Key
Vault (`RSA-HSM` when KEY_VAULT_HSM is on), through azure-keyvault-keys. The certificate and every
client assertion are signed by Key Vault's `sign` operation; no copy of the key exists anywhere
else, not even in this process.

Keys are named `m365link-<keyId>`, tagged like the secrets of `vault-secret`, with key operations
`sign` and `verify` only and no release policy. A signer is kept per key (its public half and the
key's version, a few hundred bytes), so a token request costs one `sign` and nothing else. The
`sign` goes through the KeyClient's own pipeline (`send_request`: the same challenge
authentication, retries and deadline-aware transport), so thousands of keys share one client
rather than one CryptographyClient (~30 KB) each.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.core.rest import HttpRequest
from azure.keyvault.keys import KeyClient, KeyOperation, KeyVaultKey
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding as paddings
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import AsymmetricPadding

from shared.adapters.keystore import vault_common as vault
from shared.adapters.keystore.base import Certify, KeyLabels, KeyStore, StoredKey, UnusableKey
from shared.adapters.keystore.signing_key import SigningOnlyKey
from shared.adapters.keystore.vault_common import (
    CLIENT_OPTIONS,
    sign_timed,
    tags,
    vault_error,
    vault_name,
    verifies_challenge,
)
from shared.core.errors import DependencyUnavailable

log = logging.getLogger("m365link.keystore")
NEEDED_ROLE = "Key Vault Crypto Officer"
PROBE_KEY = "m365link-health-probe"  # a name no key ever has: 404 proves the vault answered
_MAX_SIGNERS = 16384  # a few hundred bytes each: a name, a version and the public half
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def vault_padding(alg: str) -> AsymmetricPadding:
    """The padding Key Vault signs `alg` with: PKCS#1 v1.5, or PSS salted as long as the digest."""
    if alg.startswith("PS"):
        return paddings.PSS(paddings.MGF1(_HASHES[alg[2:]]()), paddings.PSS.DIGEST_LENGTH)
    return paddings.PKCS1v15()


def checked_signature(public: rsa.RSAPublicKey, answer: object, data: bytes, alg: str) -> bytes:
    """The signature in Key Vault's `sign` answer, once it proves to be this key's signature of
    `data`: a signature of the wrong length or made by another key would become a certificate
    that does not verify, or a client assertion Entra refuses (AADSTS50013)."""
    value = answer.get("value") if isinstance(answer, dict) else None
    try:
        signature = _unb64url(value) if isinstance(value, str) else b""
    except ValueError:
        signature = b""
    if len(signature) != (public.key_size + 7) // 8:
        raise _unsound("a signature of the wrong length")
    try:
        public.verify(signature, data, vault_padding(alg), _HASHES[alg[2:]]())
    except InvalidSignature:
        raise _unsound("a signature that does not verify with the key's public half") from None
    return signature


def _unsound(what: str) -> DependencyUnavailable:
    log.warning("Key Vault answered %s; nothing was signed with it", what)
    return DependencyUnavailable("key vault", "Key Vault did not sign as asked; try again shortly")


def signature_algorithm(padding: AsymmetricPadding, algorithm: object) -> str:
    """Key Vault's name (JWA) for what `cryptography` asks to sign with: PKCS#1 v1.5 -> RS*,
    PSS with a salt as long as the digest -> PS* (what Key Vault makes), SHA-256/384/512."""
    for bits, hash_type in _HASHES.items():
        if type(algorithm) is hash_type:
            if isinstance(padding, paddings.PKCS1v15):
                return "RS" + bits
            if isinstance(padding, paddings.PSS):
                return "PS" + bits
    raise ValueError("Key Vault signs with PKCS#1 v1.5 or PSS over SHA-256, -384 or -512 only")


class KeyVaultKeyStore(KeyStore):
    custody = "vault-key"
    backend = "keyvault"

    def __init__(self, vault_url: str, credential: TokenCredential, *, hsm: bool = False) -> None:
        self._hsm = hsm
        self._client = KeyClient(
            vault_url,
            credential,
            verify_challenge_resource=verifies_challenge(vault_url),
            **CLIENT_OPTIONS,
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
        if not key.name or not key.properties.version:
            raise UnusableKey("the vault did not name the key's version")
        public = rsa.RSAPublicNumbers(
            int.from_bytes(e, "big"), int.from_bytes(n, "big")
        ).public_key()
        path = f"/keys/{key.name}/{key.properties.version}/sign"

        def sign(data: bytes, padding: AsymmetricPadding, algorithm: object) -> bytes:
            alg = signature_algorithm(padding, algorithm)
            digest = hashes.Hash(_HASHES[alg[2:]]())
            digest.update(data)
            request = HttpRequest(
                "POST", path, json={"alg": alg, "value": _b64url(digest.finalize())}
            )
            with sign_timed(self.custody):
                response = self._client.send_request(request)
            if response.status_code == 404:
                raise ResourceNotFoundError(response=response)
            response.raise_for_status()
            try:
                answer = response.json()
            except ValueError:
                answer = None
            return checked_signature(public, answer, data, alg)

        # Sign-only, and its failures are the app's errors.
        return SigningOnlyKey(sign, public, on_error=self._error)

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
        vault.delete(self._client.begin_delete_key, vault_name(key_id), self._error)

    def list(self) -> Iterator[StoredKey]:
        return vault.listed(self._client.list_properties_of_keys, self._error)

    def ping(self) -> None:
        vault.probe(self._client.get_key, PROBE_KEY, self._error)
