"""What the two custodies whose keys are made in the app share (`local`, `vault-secret`): the
key is generated here, certified, then kept as PKCS#8 PEM by the backend; to sign it is read
back and handed out as a sign-only key object.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import replace

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.adapters.keystore.base import Certify, KeyLabels, KeyStore, UnusableKey
from shared.adapters.keystore.signing_key import SigningOnlyKey
from shared.core import certificates

KeyGenerator = Callable[[int], rsa.RSAPrivateKey]


class PemKeyStore(KeyStore):
    def __init__(self, generate: KeyGenerator | None = None) -> None:
        # Benchmarks hand in a generator of keys made ahead of time; the app generates here.
        self._generate = generate or certificates.new_private_key

    @abstractmethod
    def _save(self, key_id: str, private_key_pem: bytes, labels: KeyLabels) -> None:
        """Keep the PEM. Raises DependencyUnavailable."""

    @abstractmethod
    def _load(self, key_id: str) -> bytes:
        """The PEM. Raises PrivateKeyMissing or DependencyUnavailable."""

    def create(
        self, key_id: str, labels: KeyLabels, *, key_size: int, certify: Certify
    ) -> x509.Certificate:
        key = self._generate(key_size)
        public = key.public_key()
        cert = certify(SigningOnlyKey(key.sign, public), public)
        thumbprint = cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - Entra's id
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self._save(key_id, pem, replace(labels, thumbprint=thumbprint))
        return cert

    def signer(self, key_id: str) -> rsa.RSAPrivateKey:
        pem = self._load(key_id)
        try:
            # This app made the key and it only comes back from its own store: skip the full
            # RSA validation (~50 ms of CPU per load).
            key = serialization.load_pem_private_key(
                pem, password=None, unsafe_skip_rsa_key_validation=True
            )
        except (ValueError, TypeError):
            raise UnusableKey("the stored private key is not a PEM private key") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise UnusableKey("the stored key is not an RSA key")
        return SigningOnlyKey(key.sign, key.public_key())
