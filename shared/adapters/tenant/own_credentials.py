"""The app's only writes in a customer's tenant: Graph `addKey` / `removeKey` on its own app
registration (automatic renewal, issue 13; FACTS §10 Self-rotation).

Graph checks a proof of possession, a JWT signed by one of the application's valid certificates
(the current key; under `vault-key` Key Vault signs it), so an application needs no permission to
roll its own keys. Every answer comes back as a `GraphWrite` (done, refused, transient), never as
an exception, whatever Graph sent. The proof and the token are never logged nor returned.

The shared session retries POSTs on 429/5xx, so an `addKey` whose first attempt landed can come
back as "already has this certificate": on a 400/409 the application's certificates are read, and
the write is done when the new certificate is among them.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from cryptography.hazmat.primitives.asymmetric import rsa

from shared.adapters.tenant.assertion import KeyUnavailable, sign_jwt
from shared.adapters.tenant.client import TenantClient
from shared.adapters.tenant.graph_write import GraphWrite, judged
from shared.core import certificates
from shared.core.app_registration import thumbprint_of
from shared.support.guid import parse_guid

PROOF_AUDIENCE = "00000002-0000-0000-c000-000000000000"  # FACTS §10: the proof's `aud`
PROOF_LIFETIME_SECONDS = 600  # Graph: `nbf` and `exp` at most 10 minutes apart
_THUMBPRINT = re.compile(r"[0-9A-Fa-f]{40}")
_READ = "reading the application"

log = logging.getLogger("m365link.own_credentials")

P = ParamSpec("P")
R = TypeVar("R")


def _logged(function: Callable[P, R]) -> Callable[P, R]:
    """Logs the outcome of each write (never its proof or token: they are not in a GraphWrite)."""

    @functools.wraps(function)
    def logged(*args: P.args, **kwargs: P.kwargs) -> R:
        result = function(*args, **kwargs)
        if isinstance(result, GraphWrite):
            log.info(
                "graph write operation=%s outcome=%s status=%s code=%s",
                result.operation,
                result.outcome,
                result.status,
                result.code,
            )
        return result

    return logged


def proof_of_possession(
    signer: rsa.RSAPrivateKey, *, object_id: str, thumbprint: str, now: float | None = None
) -> str:
    """The proof Graph asks of addKey/removeKey: RS256, `x5t` = the signing certificate's SHA-1,
    `aud` PROOF_AUDIENCE, `iss` the application's object id, valid 10 minutes. Only `sign()` of
    `signer` is used (a sign-only Key Vault key works); what it raises is raised."""
    issued = int(now if now is not None else time.time())
    claims = {
        "aud": PROOF_AUDIENCE,
        "iss": object_id,
        "nbf": issued,
        "exp": issued + PROOF_LIFETIME_SECONDS,
        "jti": str(uuid.uuid4()),
    }
    return sign_jwt(signer, claims, thumbprint=thumbprint)


@_logged
def add_certificate(
    tenant: TenantClient,
    graph: str,
    token: str,
    *,
    object_id: str,
    certificate_pem: str,
    signer: rsa.RSAPrivateKey,
    signer_thumbprint: str,
    operation: str = "addKey",
) -> GraphWrite:
    """Add `certificate_pem` to the application `object_id` with `addKey`, the proof signed by
    `signer` (the current key; `signer_thumbprint` is its certificate's SHA-1).

    200: done, with the keyId Graph gave it. A 400/409 is done when the application lists the
    certificate (an earlier attempt of the same call landed), else refused with Graph's code and
    message, as is any other 4xx. 429/5xx or no answer: transient. A signer that cannot sign
    raises `KeyUnavailable` (the key store's error as `cause`), as it does for MSAL."""
    oid = _object_id(object_id, signer_thumbprint, operation)
    if isinstance(oid, GraphWrite):
        return oid
    der = _der(certificate_pem)
    if der is None:
        return GraphWrite("refused", message="the new certificate is not PEM", operation=operation)
    thumbprint = hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()
    body = {
        "keyCredential": {
            "type": "AsymmetricX509Cert",
            "usage": "Verify",
            "key": base64.b64encode(der).decode("ascii"),
        },
        "passwordCredential": None,
        "proof": _proof(signer, oid, signer_thumbprint),
    }
    url = f"{graph}/v1.0/applications/{oid}/addKey"
    answer = tenant.graph_post(url, token, body)
    if answer.ok:
        key_id = parse_guid((answer.body or {}).get("keyId"))
        return GraphWrite("done", answer.status, key_credential_id=key_id, operation=operation)
    if answer.status in (400, 409):
        listed = _key_credentials(tenant, graph, token, oid, operation)
        if isinstance(listed, GraphWrite):
            # Unknown whether it landed: try again later; unreadable for good: Graph's refusal.
            return listed if listed.outcome == "transient" else judged(answer, operation)
        landed = next((c for c in listed if thumbprint_of(c) == thumbprint), None)
        if landed is not None:
            return GraphWrite(
                "done",
                answer.status,
                message="the application already lists the new certificate",
                key_credential_id=parse_guid(landed.get("keyId")),
                operation=operation,
            )
    return judged(answer, operation)


@_logged
def remove_certificate(
    tenant: TenantClient,
    graph: str,
    token: str,
    *,
    object_id: str,
    thumbprint: str,
    signer: rsa.RSAPrivateKey,
    signer_thumbprint: str,
    own_removal: bool = False,
) -> GraphWrite:
    """Remove the certificate whose SHA-1 is `thumbprint` from the application `object_id`: its
    keyId is read from the application's keyCredentials, then `removeKey` with a proof signed by
    `signer` (the current key). Not listed (already removed by hand), 204 or 404: done. The
    signer's own certificate is refused here, never asked for: without it the app could not sign
    in; unless `own_removal` (the account signs in with a federated credential now, and the
    replaced certificate signs its own removal). Another 4xx: refused; 429/5xx or no answer:
    transient. A signer that cannot sign raises `KeyUnavailable`."""
    operation = "removeKey"
    oid = _object_id(object_id, signer_thumbprint, operation)
    if isinstance(oid, GraphWrite):
        return oid
    if not _THUMBPRINT.fullmatch(thumbprint):
        return GraphWrite("refused", message="the thumbprint is not a SHA-1", operation=operation)
    wanted = thumbprint.upper()
    if wanted == signer_thumbprint.upper() and not own_removal:
        return GraphWrite(
            "refused",
            message="the certificate that signs the proof is the current key's and stays",
            operation=operation,
        )
    listed = _key_credentials(tenant, graph, token, oid, operation)
    if isinstance(listed, GraphWrite):
        return listed
    target = next((c for c in listed if thumbprint_of(c) == wanted), None)
    if target is None:
        return GraphWrite(
            "done", message="the application no longer lists the certificate", operation=operation
        )
    key_id = parse_guid(target.get("keyId"))
    if key_id is None:
        return GraphWrite(
            "refused",
            200,
            message="Graph lists the certificate without a keyId that is a GUID",
            operation=operation,
        )
    body = {"keyId": key_id, "proof": _proof(signer, oid, signer_thumbprint)}
    url = f"{graph}/v1.0/applications/{oid}/removeKey"
    answer = tenant.graph_post(url, token, body)
    if answer.ok or answer.status == 404:  # 404: that keyId is gone already
        return GraphWrite("done", answer.status, key_credential_id=key_id, operation=operation)
    return judged(answer, operation)


@_logged
def application_object_id(
    tenant: TenantClient, graph: str, token: str, application_id: str
) -> str | GraphWrite:
    """The object id (what addKey/removeKey address) of the application whose appId is
    `application_id`, or why it could not be had (refused or transient)."""
    app_id = parse_guid(application_id)
    if app_id is None:
        return GraphWrite("refused", message="the application id is not a GUID", operation=_READ)
    url = f"{graph}/v1.0/applications(appId='{app_id}')?$select=id"
    answer = tenant.graph_get(url, token)
    if not answer.ok:
        return judged(answer, _READ)
    object_id = parse_guid((answer.body or {}).get("id"))
    if object_id is None:
        return GraphWrite(
            "refused",
            answer.status,
            message="the answer holds no object id that is a GUID",
            operation=_READ,
        )
    return object_id


# --- helpers -------------------------------------------------------------------------------------
def _object_id(object_id: str, signer_thumbprint: str, operation: str) -> str | GraphWrite:
    """The object id, canonical, when both ids a write is built from are well formed."""
    oid = parse_guid(object_id)
    if oid is None:
        return GraphWrite("refused", message="the object id is not a GUID", operation=operation)
    if not _THUMBPRINT.fullmatch(signer_thumbprint):
        return GraphWrite(
            "refused", message="the signer's thumbprint is not a SHA-1", operation=operation
        )
    return oid


def _der(certificate_pem: str) -> bytes | None:
    try:
        return certificates.export(certificate_pem, "cer")[0]
    except (ValueError, UnicodeEncodeError):
        return None


def _proof(signer: rsa.RSAPrivateKey, object_id: str, signer_thumbprint: str) -> str:
    try:
        return proof_of_possession(signer, object_id=object_id, thumbprint=signer_thumbprint)
    except Exception as exc:  # the key store's failure (Key Vault down, key deleted...)
        raise KeyUnavailable(exc) from None


def _key_credentials(
    tenant: TenantClient, graph: str, token: str, object_id: str, operation: str
) -> list[dict[str, Any]] | GraphWrite:
    """The application's keyCredentials, or why they could not be read."""
    url = f"{graph}/v1.0/applications/{object_id}?$select=keyCredentials"
    answer = tenant.graph_get(url, token)
    what = f"{operation} ({_READ}'s certificates)"
    if not answer.ok:
        return judged(answer, what)
    listed = (answer.body or {}).get("keyCredentials")
    if not isinstance(listed, list):
        return GraphWrite(
            "refused", answer.status, message="the answer lists no keyCredentials", operation=what
        )
    return [c for c in listed if isinstance(c, dict)]
