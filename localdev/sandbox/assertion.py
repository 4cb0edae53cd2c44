"""Verification of a client assertion (RFC 7523 JWT) as Entra verifies a certificate credential.

Why: the point of the sandbox is that a wrong key, a certificate never uploaded, an expired one,
a wrong audience or a stale assertion fail here exactly as they would in Entra, with Entra's codes,
so the app's verification report can be tested end to end. Error texts quote the thumbprint the
client used, never the assertion itself.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt

from localdev.sandbox.certificates import UploadedCertificate
from localdev.sandbox.state import Application
from localdev.sandbox.wire import EntraError

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SUPPORTED_ALGORITHMS = ("RS256", "PS256")
CLOCK_SKEW_SECONDS = 300
_DOCS = (
    "Review the documentation at "
    "https://learn.microsoft.com/entra/identity-platform/certificate-credentials ."
)


@dataclass(frozen=True)
class AssertionCheck:
    """What the token request says the assertion must match."""

    client_id: str
    token_endpoint: str  # the one the tenant's metadata names, quoted in errors
    audiences: frozenset[str]  # lower-case token endpoint URLs accepted as `aud`
    now: float


def _invalid_client(code: int, message: str, status: int = 401) -> EntraError:
    return EntraError(status, "invalid_client", code, message)


def _malformed() -> EntraError:
    return _invalid_client(50027, "JWT token is invalid or malformed.", status=400)


def _signature_failure(reason: str, thumbprint: str, app_id: str, found: str = "") -> EntraError:
    found_text = f", Found key '{found}'" if found else ""
    return _invalid_client(
        700027,
        f"Client assertion failed signature validation. [Reason - {reason}, Thumbprint of key "
        f"used by client: '{thumbprint}'{found_text}, Please visit the Azure Portal, Graph "
        f"Explorer or directly use MS Graph to see configured keys for app Id '{app_id}'.]",
    )


def _decode_thumbprint(value: str) -> bytes | None:
    """x5t values are base64url, with or without `=` padding (MSAL keeps it)."""
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None


def _utc_text(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _find_key(header: dict[str, Any], app: Application) -> UploadedCertificate:
    sha256_value, sha1_value = header.get("x5t#S256"), header.get("x5t")
    value = sha256_value if isinstance(sha256_value, str) else sha1_value
    if not isinstance(value, str) or not value:
        raise _signature_failure(
            "No certificate thumbprint specified in token header.", "", app.app_id
        )
    digest = _decode_thumbprint(value)
    shown = digest.hex().upper() if digest else value
    certificate = app.find_certificate(digest) if digest else None
    if certificate is None:
        raise _signature_failure("The key was not found.", shown, app.app_id)
    return certificate


def verify_client_assertion(assertion: str, app: Application, check: AssertionCheck) -> None:
    """Raise the EntraError Entra would answer for this assertion; return if it is acceptable."""
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.InvalidTokenError as error:
        raise _malformed() from error
    algorithm = header.get("alg")
    certificate = _find_key(header, app)
    thumbprint = certificate.thumbprint
    if "x5t#S256" in header:
        thumbprint = certificate.sha256.hex().upper()
    if algorithm not in SUPPORTED_ALGORITHMS:
        raise _invalid_client(
            5002738,
            f"Invalid JWT token. '{algorithm}' is not a supported signature algorithm. "
            f"Supported signing algorithms are: '{', '.join(SUPPORTED_ALGORITHMS)}'",
        )
    found = certificate.validity_text()
    try:
        claims: dict[str, Any] = jwt.decode(
            assertion,
            certificate.public_key,
            algorithms=[algorithm],
            options={
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
                "verify_iss": False,
                "verify_sub": False,
                "verify_jti": False,
            },
        )
    except jwt.InvalidSignatureError as error:
        reason = "The provided signature value did not match the expected signature value."
        raise _signature_failure(reason, thumbprint, app.app_id, found) from error
    except jwt.InvalidTokenError as error:
        raise _malformed() from error

    if check.now > certificate.not_after.timestamp():
        raise _signature_failure("The key used is expired.", thumbprint, app.app_id, found)
    if check.now < certificate.not_before.timestamp():
        raise _signature_failure("The key used is not yet valid.", thumbprint, app.app_id, found)

    client_id = check.client_id.lower()
    if str(claims.get("iss", "")).lower() != client_id or (
        str(claims.get("sub", "")).lower() != client_id
    ):
        raise _invalid_client(
            700021,
            f"Client assertion application identifier doesn't match 'client_id' parameter. {_DOCS}",
        )

    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if not any(isinstance(a, str) and a.lower() in check.audiences for a in audiences):
        raise _invalid_client(
            50012,
            f"Client assertion audience claim does not match Realm issuer. Audience in the "
            f"assertion: '{audience}'; expected: '{check.token_endpoint}'. {_DOCS}",
        )

    expires = claims.get("exp")
    not_before = claims.get("nbf", claims.get("iat"))
    if (
        not isinstance(expires, int | float)
        or check.now > expires + CLOCK_SKEW_SECONDS
        or (isinstance(not_before, int | float) and not_before > check.now + CLOCK_SKEW_SECONDS)
    ):
        valid_from = _utc_text(not_before) if isinstance(not_before, int | float) else "(none)"
        expiry = _utc_text(expires) if isinstance(expires, int | float) else "(none)"
        raise _invalid_client(
            700024,
            f"Client assertion is not within its valid time range. Current time: "
            f"{_utc_text(check.now)}, assertion valid from {valid_from}, expiry time of "
            f"assertion {expiry}. {_DOCS}",
        )
