"""Key pairs and self-signed certificates for Entra certificate credentials. Pure: no I/O.

Entra accepts only RSA keys; the certificate is uploaded as is in the Entra admin center
(Certificates & secrets), as DER (`.cer`) or PEM (`.pem`, `.crt`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shared.core.errors import DependencyUnavailable

KEY_SIZES = (2048, 3072, 4096)
# notBefore is set back so a client or Entra clock a little behind still accepts the certificate.
CLOCK_SKEW = timedelta(minutes=5)
_CN_MAX_BYTES = 64

DOWNLOAD_FORMATS: dict[str, str] = {
    "cer": "application/pkix-cert",
    "pem": "application/x-pem-file",
    "crt": "application/x-pem-file",
}


@dataclass(frozen=True)
class CertificateInfo:
    """What the key resource shows of a certificate."""

    thumbprint: str  # SHA-1, upper-case hex: what the Entra admin center shows
    thumbprint_sha256: str
    subject: str
    not_before: datetime
    not_after: datetime
    key_size: int
    certificate_pem: str


@dataclass(frozen=True)
class KeyPair:
    private_key_pem: bytes  # PKCS#8, unencrypted (tests and benchmarks only)
    info: CertificateInfo


def new_private_key(key_size: int) -> rsa.RSAPrivateKey:
    """A fresh RSA key (for the custodies whose keys are made in the app: local, vault-secret)."""
    if key_size not in KEY_SIZES:
        raise ValueError(f"key size must be one of {KEY_SIZES}")
    return rsa.generate_private_key(public_exponent=65537, key_size=key_size)


def certify(
    signer: rsa.RSAPrivateKey,
    public_key: rsa.RSAPublicKey,
    display_name: str,
    *,
    validity_days: int,
    now: datetime,
) -> x509.Certificate:
    """A self-signed X.509 v3 client-authentication certificate for `public_key`.

    `signer` only needs `sign()`: `cryptography` calls it for the signature, so the same builder
    serves a key in memory and a key that never leaves Key Vault (whose `sign()` asks the vault).
    A certificate whose self-signature does not verify (a signer that is not `public_key`'s
    private half) is never handed out: DependencyUnavailable, the key store's failure.
    """
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name(display_name))])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=validity_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(signer, hashes.SHA256())
    )
    if not self_signed(cert):
        raise DependencyUnavailable(
            "key store", "the key store signed a certificate that does not verify; try again"
        )
    return cert


def self_signed(cert: x509.Certificate) -> bool:
    """True when the certificate's own public key verifies its signature (and it names itself
    as its issuer)."""
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def generate(display_name: str, *, validity_days: int, key_size: int, now: datetime) -> KeyPair:
    """A key in memory and its certificate (tests and benchmarks; the app makes keys in the
    key store, which never hands a private key out)."""
    key = new_private_key(key_size)
    cert = certify(key, key.public_key(), display_name, validity_days=validity_days, now=now)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return KeyPair(private_key_pem=private_pem, info=describe(cert))


def common_name(display_name: str) -> str:
    """The display name as a CN: X.509 allows 64 and cryptography counts UTF-8 bytes, so a name of
    64 characters outside ASCII is cut at a character boundary (the record keeps it whole)."""
    encoded = display_name.encode("utf-8")[:_CN_MAX_BYTES]
    return encoded.decode("utf-8", errors="ignore") or "certificate"


def describe(cert: x509.Certificate) -> CertificateInfo:
    public_key = cert.public_key()
    key_size = public_key.key_size if isinstance(public_key, rsa.RSAPublicKey) else 0
    return CertificateInfo(
        thumbprint=cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - Entra's thumbprint
        thumbprint_sha256=cert.fingerprint(hashes.SHA256()).hex().upper(),
        subject=cert.subject.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        key_size=key_size,
        certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
    )


def export(certificate_pem: str, fmt: str) -> tuple[bytes, str]:
    """The certificate in a download format and its content type."""
    content_type = DOWNLOAD_FORMATS[fmt]
    if fmt == "cer":
        cert = x509.load_pem_x509_certificate(certificate_pem.encode("ascii"))
        return cert.public_bytes(serialization.Encoding.DER), content_type
    return certificate_pem.encode("ascii"), content_type


def private_key_matches(private_key_pem: bytes, certificate_pem: str) -> bool:
    """True when the private key is the pair of the certificate's public key."""
    key = serialization.load_pem_private_key(private_key_pem, password=None)
    cert = x509.load_pem_x509_certificate(certificate_pem.encode("ascii"))
    return bool(
        key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        == cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def signer_matches(signer: rsa.RSAPrivateKey, certificate_pem: str) -> bool:
    """True when `signer` signs for the certificate's public key (whatever custody it is in)."""
    cert = x509.load_pem_x509_certificate(certificate_pem.encode("ascii"))
    public = cert.public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        return False
    message = b"m365-link: does this key sign for this certificate?"
    signature = signer.sign(message, padding.PKCS1v15(), hashes.SHA256())
    try:
        public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


def download_filename(display_name: str, fmt: str) -> str:
    """A file name safe in a Content-Disposition header and on every file system."""
    stem = _UNSAFE_FILENAME.sub("-", display_name).strip("-.")[:64] or "certificate"
    return f"{stem}.{fmt}"
