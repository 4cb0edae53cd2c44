"""Certificates a customer uploads to an app registration, as the sandbox keeps them.

Why: the token endpoint finds the key that signed a client assertion by the assertion's `x5t`
(SHA-1) or `x5t#S256` (SHA-256) header and checks the certificate's validity window, as Entra does.
Parsing and thumbprints live here so the admin API and the token endpoint agree on them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa


@dataclass(frozen=True)
class UploadedCertificate:
    """The public certificate of an app's key credential (`usage: Verify`)."""

    key_id: str
    certificate: x509.Certificate

    @property
    def sha1(self) -> bytes:
        return self.certificate.fingerprint(hashes.SHA1())  # noqa: S303 - x5t is SHA-1 by spec

    @property
    def sha256(self) -> bytes:
        return self.certificate.fingerprint(hashes.SHA256())

    @property
    def thumbprint(self) -> str:
        """SHA-1 thumbprint in upper-case hex, as the app registration shows it."""
        return self.sha1.hex().upper()

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        key = self.certificate.public_key()
        assert isinstance(key, rsa.RSAPublicKey)  # parse_certificate admits RSA only
        return key

    @property
    def not_before(self) -> datetime:
        return self.certificate.not_valid_before_utc

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc

    def validity_text(self) -> str:
        """`Start=…, End=…` as Entra quotes a key in AADSTS700027."""
        fmt = "%m/%d/%Y %H:%M:%S"
        return f"Start={self.not_before.strftime(fmt)}, End={self.not_after.strftime(fmt)}"

    def to_json(self) -> dict[str, Any]:
        return {
            "keyId": self.key_id,
            "thumbprint": self.thumbprint,
            "thumbprintSha256": self.sha256.hex().upper(),
            "subject": self.certificate.subject.rfc4514_string(),
            "notBefore": self.not_before.isoformat().replace("+00:00", "Z"),
            "notAfter": self.not_after.isoformat().replace("+00:00", "Z"),
            "type": "AsymmetricX509Cert",
            "usage": "Verify",
        }


def parse_certificate(data: bytes) -> UploadedCertificate:
    """The first certificate in PEM or DER `data`; ValueError if there is none or not RSA.

    Entra accepts only RSA keys, and the portal's upload takes `.cer`, `.pem` and `.crt` files,
    which hold either encoding.
    """
    if b"-----BEGIN" in data:
        if b"PRIVATE KEY-----" in data and b"CERTIFICATE-----" not in data:
            raise ValueError("this is a private key; upload the public certificate only")
        try:
            certificate = x509.load_pem_x509_certificates(data)[0]
        except ValueError as error:
            raise ValueError("the PEM data holds no valid certificate") from error
    else:
        try:
            certificate = x509.load_der_x509_certificate(data)
        except ValueError as error:
            raise ValueError("the data is neither a PEM nor a DER certificate") from error
    if not isinstance(certificate.public_key(), rsa.RSAPublicKey):
        raise ValueError("only certificates with an RSA key are supported")
    return UploadedCertificate(key_id=str(uuid.uuid4()), certificate=certificate)
