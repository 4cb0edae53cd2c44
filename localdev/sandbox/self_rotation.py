"""Graph's `addKey` / `removeKey` on an application object: an app rolling its own certificates.

Why: automatic renewal (issue 13) adds a new certificate to the customer's app registration with a
proof of possession signed by the current key, and later removes the old one. Graph verifies that
proof for real (a JWT signed by one of the application's currently valid certificates, `aud`
00000002-0000-0000-c000-000000000000, `iss` = the application's object id, at most 10 minutes
between `nbf` and `exp`), and refuses certificates an app-management policy forbids. The sandbox
does the same so the app's renewal can be tested end to end, refusals included.

Error codes: a bad proof is `401 Authentication_MissingOrMalformed` "Access Token missing or
malformed." (what Graph answers, seen in microsoft-graph-docs issues #10686 and #22076); the
sandbox's reason is in the `x-sandbox-reason` header only. No proof at all is `403
Authorization_RequestDenied` (msgraph-sdk-powershell #779). A policy refusal is `400
CredentialInvalidLifetimeAsPerAppPolicy` with a `details` entry `InvalidKeyEndDate`, the shape
seen for passwords (microsoft-365-agents-toolkit #10998); for certificates it is unconfirmed.
Other refusals (`Request_BadRequest`) use the sandbox's own words.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from typing import Any

import jwt
from werkzeug.wrappers import Request, Response

from localdev.sandbox.certificates import parse_certificate
from localdev.sandbox.directory_roles import is_guid
from localdev.sandbox.state import Application, KeyCredential, Tenant
from localdev.sandbox.wire import graph_error, graph_headers, graph_response

PROOF_AUDIENCE = "00000002-0000-0000-c000-000000000000"
PROOF_ALGORITHMS = ("RS256", "PS256")
MAX_PROOF_LIFETIME_SECONDS = 600
CLOCK_SKEW_SECONDS = 300
# Application permissions that let another application change this one (it still needs a proof).
APPLICATION_WRITE = frozenset({"Application.ReadWrite.All", "Directory.ReadWrite.All"})
_DENIED = "Insufficient privileges to complete the operation."


class ProofError(Exception):
    """The proof is not acceptable; the message says why (never quoting the proof)."""


def _thumbprint(value: Any) -> bytes | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None


def verify_proof(proof: str, app: Application, now: float) -> KeyCredential:
    """The certificate that signed `proof`; ProofError if Graph would not accept the proof."""
    try:
        header = jwt.get_unverified_header(proof)
    except jwt.InvalidTokenError as error:
        raise ProofError("the proof is not a JWT") from error
    algorithm = header.get("alg")
    if algorithm not in PROOF_ALGORITHMS:
        raise ProofError(f"alg {algorithm!r} is not RS256 or PS256")
    sha256, sha1 = _thumbprint(header.get("x5t#S256")), _thumbprint(header.get("x5t"))
    if sha256 is None and sha1 is None:
        raise ProofError("the proof's header names no certificate (x5t or x5t#S256)")
    signer = next(
        (c for c in app.key_credentials() if c.sha256 == sha256 or c.sha1 == sha1),
        None,
    )
    if signer is None:
        raise ProofError("no certificate of this application has the proof's thumbprint")
    if not signer.is_valid_at(now):
        raise ProofError("the certificate that signed the proof is expired or not yet valid")
    try:
        claims: dict[str, Any] = jwt.decode(
            proof,
            signer.public_key,
            algorithms=[algorithm],
            audience=PROOF_AUDIENCE,
            issuer=app.object_id,
            leeway=CLOCK_SKEW_SECONDS,
            options={"require": ["aud", "iss", "nbf", "exp"]},
        )
    except jwt.InvalidSignatureError as error:
        raise ProofError("the signature does not verify with that certificate") from error
    except jwt.MissingRequiredClaimError as error:
        raise ProofError(f"the proof has no {error.claim} claim") from error
    except jwt.InvalidAudienceError as error:
        raise ProofError(f"aud must be {PROOF_AUDIENCE}") from error
    except jwt.InvalidIssuerError as error:
        raise ProofError("iss must be the application's object id") from error
    except jwt.ExpiredSignatureError as error:
        raise ProofError("the proof has expired") from error
    except jwt.ImmatureSignatureError as error:
        raise ProofError("the proof is not valid yet (nbf)") from error
    except jwt.InvalidTokenError as error:
        raise ProofError("the proof is malformed") from error
    if claims["exp"] - claims["nbf"] > MAX_PROOF_LIFETIME_SECONDS:
        raise ProofError("exp is more than 10 minutes after nbf")
    return signer


def _proof_refused(request: Request, reason: str) -> Response:
    return graph_error(
        request,
        401,
        "Authentication_MissingOrMalformed",
        "Access Token missing or malformed.",
        headers={"x-sandbox-reason": reason},
    )


def _bad_request(request: Request, message: str) -> Response:
    return graph_error(request, 400, "Request_BadRequest", message)


def _body(request: Request) -> dict[str, Any] | Response:
    try:
        body = json.loads(request.get_data() or b"null")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return graph_error(request, 400, "BadRequest", "Empty or invalid JSON request body.")
    return body


def _policy_refusal(request: Request, message: str) -> Response:
    response = graph_error(request, 400, "CredentialInvalidLifetimeAsPerAppPolicy", message)
    body = json.loads(response.get_data())
    body["error"]["details"] = [
        {"code": "InvalidKeyEndDate", "message": message, "target": "EndDate"}
    ]
    response.set_data(json.dumps(body))
    return response


class SelfRotation:
    """`POST /applications/{id}/addKey` and `/removeKey` for one tenant's applications."""

    def __init__(self, base_url: str) -> None:
        self._base_url = base_url

    @staticmethod
    def may_change(
        caller_app_id: str, app_only: bool, roles: frozenset[str], app: Application
    ) -> bool:
        """An application needs no permission to roll its own keys; another needs a write one."""
        own = app_only and caller_app_id.lower() == app.app_id.lower()
        return own or bool(roles & APPLICATION_WRITE)

    def _proof(
        self, request: Request, body: dict[str, Any], app: Application
    ) -> KeyCredential | Response:
        proof = body.get("proof")
        if not isinstance(proof, str) or not proof:
            # Without a proof the call is an ordinary write of the application: refused.
            return graph_error(request, 403, "Authorization_RequestDenied", _DENIED)
        try:
            return verify_proof(proof, app, time.time())
        except ProofError as error:
            return _proof_refused(request, str(error))

    def add_key(self, request: Request, tenant: Tenant, app: Application) -> Response:
        body = _body(request)
        if isinstance(body, Response):
            return body
        key_credential = body.get("keyCredential")
        if not isinstance(key_credential, dict):
            return _bad_request(request, "The keyCredential parameter is required.")
        signer = self._proof(request, body, app)
        if isinstance(signer, Response):
            return signer
        if (key_credential.get("type"), key_credential.get("usage")) != (
            "AsymmetricX509Cert",
            "Verify",
        ):
            return _bad_request(
                request,
                "The sandbox adds keyCredentials of type 'AsymmetricX509Cert' with usage "
                "'Verify' only.",
            )
        try:
            der = base64.b64decode(str(key_credential.get("key") or ""), validate=True)
            certificate = parse_certificate(der)
        except (binascii.Error, ValueError):
            return _bad_request(
                request, "Invalid value specified for property 'key' of resource 'KeyCredential'."
            )
        if certificate.thumbprint in app.certificates:
            return _bad_request(request, "The application already has this certificate.")
        if certificate.not_after.timestamp() < time.time():
            return _bad_request(request, "The certificate's end date is in the past.")
        refusal = tenant.certificate_lifetime_refusal(certificate)
        if refusal is not None:
            return _policy_refusal(request, refusal)
        stored = app.add_certificate(certificate)
        return graph_response(
            request,
            {
                "@odata.context": f"{self._base_url}/v1.0/$metadata#microsoft.graph.keyCredential",
                **stored.graph_json(with_key=False),
            },
        )

    def remove_key(self, request: Request, tenant: Tenant, app: Application) -> Response:
        body = _body(request)
        if isinstance(body, Response):
            return body
        key_id = body.get("keyId")
        if not isinstance(key_id, str) or not is_guid(key_id):
            return _bad_request(request, "The keyId parameter must be a GUID.")
        signer = self._proof(request, body, app)
        if isinstance(signer, Response):
            return signer
        target = next(
            (c for c in app.key_credentials() if c.key_id == str(uuid.UUID(key_id))), None
        )
        if target is None:
            return graph_error(
                request,
                404,
                "Request_ResourceNotFound",
                f"No key credential with keyId '{key_id}' exists on the application.",
            )
        if target.key_id == signer.key_id and not app.federated_credentials:
            # A certificate may sign its own removal only while the app keeps another credential
            # (a federated one): the sandbox never lets an app remove its last way to sign in.
            return _bad_request(
                request,
                "The certificate that signed the proof cannot be removed; sign the proof with "
                "another valid certificate of the application.",
            )
        del app.certificates[target.thumbprint]
        return Response(status=204, headers=graph_headers(request))
