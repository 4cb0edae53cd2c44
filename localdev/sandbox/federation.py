"""Federated client assertions at the token endpoint, checked as Entra checks them.

Why: with a federated credential (FACTS §12) the app signs its client assertion with its own
OpenID issuer's key instead of a certificate. Entra first finds a federated credential of the app
whose issuer, subject and audience equal the assertion's `iss`, `sub` and `aud` exactly and
case-sensitively (a trailing slash is a mismatch), then fetches the issuer's keys (cached, see
issuer_keys.py), then verifies the signature and lifetime. Each failure has its own AADSTS code,
and the app's verification report tells "the customer typed it wrong" from "our issuer is not
reachable" by those codes, so the sandbox answers the same ones.

Statuses: AADSTS70021 was seen as `400 invalid_request` (azure-workload-identity #616), the
700211/700213/7002137 family as `401 invalid_client` (azure-workload-identity #1200, microsoft/
Agents #202). The statuses of 50166, 7000272 and 7000274 are the sandbox's choice (401
`invalid_client`), unconfirmed.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import jwt

from localdev.sandbox.assertion import CLOCK_SKEW_SECONDS
from localdev.sandbox.federated_credentials import FederatedCredential
from localdev.sandbox.issuer_keys import IssuerKeyCache, IssuerUnreachable
from localdev.sandbox.state import SandboxState
from localdev.sandbox.wire import EntraError

_DOCS = "https://learn.microsoft.com/entra/workload-id/workload-identity-federation"
_CHECK = "Check your federated identity credential Subject, Audience and Issuer against the "


def _invalid_client(code: int, message: str) -> EntraError:
    return EntraError(401, "invalid_client", code, message)


def is_federated(header: dict[str, Any], claims: dict[str, Any], client_id: str) -> bool:
    """A client assertion Entra treats as federated: it names no certificate (`x5t`,
    `x5t#S256`) and names a key id or an issuer other than the application itself."""
    if "x5t" in header or "x5t#S256" in header:
        return False
    issuer = claims.get("iss")
    return "kid" in header or (isinstance(issuer, str) and issuer.lower() != client_id.lower())


def _audiences(claims: dict[str, Any]) -> list[str]:
    audience = claims.get("aud")
    values = audience if isinstance(audience, list) else [audience]
    return [a for a in values if isinstance(a, str)]


def match_credential(
    credentials: list[FederatedCredential], claims: dict[str, Any]
) -> FederatedCredential:
    """The credential whose issuer, subject and an audience equal the assertion's, exactly."""
    issuer, subject = claims.get("iss"), claims.get("sub")
    audiences = _audiences(claims)
    for credential in credentials:
        if (
            credential.issuer == issuer
            and credential.subject == subject
            and any(a in credential.audiences for a in audiences)
        ):
            return credential
    if not credentials:
        raise EntraError(
            400,
            "invalid_request",
            70021,
            f"No matching federated identity record found for presented assertion. Assertion "
            f"Issuer: '{issuer}'. Assertion Subject: '{subject}'. Assertion Audience: "
            f"'{','.join(audiences)}'. {_DOCS}",
        )
    same_issuer = [c for c in credentials if c.issuer == issuer]
    if not same_issuer:
        raise _invalid_client(
            700211,
            f"No matching federated identity record found for presented assertion issuer "
            f"'{issuer}'. Please check your federated identity credential Subject, Audience and "
            f"Issuer against the presented assertion. {_DOCS}",
        )
    if any(c.subject == subject for c in same_issuer):
        raise _invalid_client(
            700212,
            f"No matching federated identity record found for presented assertion audience "
            f"'{','.join(audiences)}'. {_CHECK}presented assertion. {_DOCS}",
        )
    if isinstance(subject, str) and any(c.subject.lower() == subject.lower() for c in same_issuer):
        raise _invalid_client(
            7002138,
            f"No matching federated identity record found for presented assertion subject "
            f"'{subject}'. The subject matches with case-insensitive comparison, but not with "
            f"case-sensitive comparison. {_CHECK}presented assertion. {_DOCS}",
        )
    raise _invalid_client(
        700213,
        f"No matching federated identity record found for presented assertion subject "
        f"'{subject}'. {_CHECK}presented assertion. {_DOCS}",
    )


def _time_range(claims: dict[str, Any], now: float) -> None:
    expires = claims.get("exp")
    not_before = claims.get("nbf", claims.get("iat"))
    if (
        not isinstance(expires, int | float)
        or now > expires + CLOCK_SKEW_SECONDS
        or (isinstance(not_before, int | float) and not_before > now + CLOCK_SKEW_SECONDS)
    ):
        raise _invalid_client(
            700024,
            f"Client assertion is not within its valid time range. Current time: {int(now)}, "
            f"assertion valid from {not_before}, expiry time of assertion {expires}.",
        )


@dataclass(frozen=True)
class AcceptedAssertion:
    """A federated assertion the token endpoint accepted: for tests to read back."""

    tenant_id: str
    app_id: str
    credential: FederatedCredential
    header: dict[str, Any]
    claims: dict[str, Any]
    accepted_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "tenantId": self.tenant_id,
            "appId": self.app_id,
            "credential": self.credential.to_json(),
            "header": dict(self.header),
            "claims": dict(self.claims),
            "acceptedAt": self.accepted_at,
        }


class Federation:
    """Verifies federated assertions with the issuers' cached keys; keeps the last accepted."""

    def __init__(self, state: SandboxState, keys: IssuerKeyCache | None = None) -> None:
        self.keys = keys or IssuerKeyCache()
        self._lock = threading.Lock()
        self._last: AcceptedAssertion | None = None
        state.on_reset.append(self.reset)

    def reset(self) -> None:
        self.keys.reset()
        with self._lock:
            self._last = None

    def last_accepted(self) -> AcceptedAssertion | None:
        with self._lock:
            return self._last

    def verify(
        self, assertion: str, credential: FederatedCredential, tenant_id: str, app_id: str
    ) -> None:
        """Raise Entra's error for an assertion that matched `credential` but is not acceptable.

        Call it without the sandbox's state lock: it may fetch the issuer's keys over HTTP.
        """
        header = jwt.get_unverified_header(assertion)
        issuer = credential.issuer
        try:
            issuer_keys = self.keys.keys(issuer)
        except IssuerUnreachable as error:
            raise _invalid_client(
                50166,
                f"Request to External OIDC endpoint failed. Issuer: '{issuer}' ({error}).",
            ) from error
        kid = header.get("kid")
        jwk = issuer_keys.keys.get(kid) if isinstance(kid, str) else None
        if jwk is None:
            raise _invalid_client(
                7000272,
                f"The certificate with identifier '{kid}' used to sign the federated credential "
                f"could not be found in the metadata of identity provider '{issuer}'.",
            )
        if header.get("alg") != "RS256":
            raise _invalid_client(
                5002738,
                f"Invalid JWT token. '{header.get('alg')}' is not a supported signature "
                "algorithm. Supported signing algorithms are: 'RS256'",
            )
        try:
            claims: dict[str, Any] = jwt.decode(
                assertion,
                jwt.PyJWK(jwk).key,
                algorithms=["RS256"],
                options={
                    "verify_signature": True,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                },
            )
        except (jwt.InvalidSignatureError, jwt.PyJWKError) as error:
            raise _invalid_client(
                7000274,
                f"Key was found, but use of the key to verify the signature failed. Key id: "
                f"'{kid}', identity provider: '{issuer}'.",
            ) from error
        except jwt.InvalidTokenError as error:
            raise EntraError(
                400, "invalid_client", 50027, "JWT token is invalid or malformed."
            ) from error
        now = time.time()
        _time_range(claims, now)
        if not isinstance(claims.get("jti"), str) or not claims["jti"]:
            raise EntraError(
                400, "invalid_client", 50027, "JWT token is invalid or malformed: no jti claim."
            )
        accepted = AcceptedAssertion(tenant_id, app_id, credential, header, claims, now)
        with self._lock:
            self._last = accepted
