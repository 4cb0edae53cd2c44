"""Key material and names the sandbox tests share: certificates, the linked tenant, MSAL.

Kept out of conftest.py so test modules can import these types and helpers by name.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import msal
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"


@dataclass(frozen=True)
class Credential:
    """A private key and its self-signed certificate, as the app's generate_key makes them."""

    key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @property
    def key_pem(self) -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

    @property
    def cert_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def cert_der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def sha1_hex(self) -> str:
        return self.certificate.fingerprint(hashes.SHA1()).hex()  # noqa: S303 - x5t is SHA-1

    @property
    def sha256(self) -> bytes:
        return self.certificate.fingerprint(hashes.SHA256())

    def x5t(self, padded: bool = True) -> str:
        value = base64.urlsafe_b64encode(bytes.fromhex(self.sha1_hex)).decode()
        return value if padded else value.rstrip("=")


def make_credential(
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    key: rsa.RSAPrivateKey | None = None,
) -> Credential:
    now = datetime.now(UTC)
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sandbox-test")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(minutes=5))
        .not_valid_after(not_after or now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return Credential(key, certificate)


@dataclass
class Linked:
    """A tenant with an app set up as the linking guide says: certificate, consent, role."""

    tenant_id: str
    app_id: str
    domain: str
    service_principal_id: str


MsalFactory = Callable[..., msal.ConfidentialClientApplication]


def token_for(factory: MsalFactory, linked: Linked, credential: Credential) -> str:
    result = factory(linked.tenant_id, linked.app_id, credential).acquire_token_for_client(
        [GRAPH_SCOPE]
    )
    assert "access_token" in result, result
    token: str = result["access_token"]
    return token
