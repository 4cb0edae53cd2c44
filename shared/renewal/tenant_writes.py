"""The app's own Graph writes in a customer's tenant (automatic renewal), each decided on a
fresh read of the account and its outcome written on the rotation.

Automatic renewal (`certificateRenewal: automatic`) is the only place the app writes to a
customer's tenant, and only its own credentials: `addKey` of the new certificate when a
rotation starts (proof signed by the current key, wherever its custody is), `removeKey` of the
replaced certificate once it is retired, or of an ended rotation's certificate. A refusal (an
app-management policy, no valid current certificate) is kept with Graph's words in the
rotation's `detail` and leaves the manual path open; a transient failure is tried again at the
timer's next visit.

Only a certificate signs a proof. An account that signs in with a federated credential has no
certificate of its own: the app never adds one for it (the customer uploads it), and a replaced
certificate's removeKey proof is signed by that certificate's own key, before it is deleted. A
federated credential is never added or removed by the app (that takes Application.ReadWrite).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from shared.adapters.tenant import own_credentials
from shared.adapters.tenant.assertion import KeyUnavailable
from shared.adapters.tenant.client import TenantClient
from shared.adapters.tenant.graph_write import GraphWrite
from shared.context import AppContext
from shared.core.model import Account, Rotation
from shared.renewal import rotation as rotations
from shared.renewal.credentials import (
    CERTIFICATE,
    ProofKey,
    app_adds,
    proof_key,
    remove_federated_steps,
)
from shared.renewal.handover import awaiting
from shared.signin import signed_in
from shared.support.guid import parse_guid

log = logging.getLogger("m365link.renewal")

# What an own-credentials call is given: the client, Graph's base URL, a token, the
# application's object id, and the signer of the proof.
GraphCall = Callable[[TenantClient, str, str, str, Any], GraphWrite]


def push_new_certificate(ctx: AppContext, account: Account) -> Account:
    """Automatic renewal: addKey the rotation's certificate to the app registration, decided on
    a fresh read: only while the rotation awaits it and automatic renewal is on. Nothing to do
    for a manual renewal or once done or refused."""
    if account.rotation is None or not account.rotation.in_progress:
        return account
    current = rotations.fresh(ctx, account)
    rotation = current.rotation
    if (
        current.certificate_renewal != "automatic"
        or rotation is None
        or not rotation.in_progress
        or rotation.add_key != "pending"
        or not app_adds(rotation.kind, current.credential)  # no certificate signs the proof
    ):
        return current
    write = _own_write(
        ctx,
        current,
        ProofKey(current.key_id, current.thumbprint),
        lambda tenant, graph, token, object_id, signer: own_credentials.add_certificate(
            tenant,
            graph,
            token,
            object_id=object_id,
            certificate_pem=str(rotation.key["certificatePem"]),
            signer=signer,
            signer_thumbprint=current.thumbprint,
        ),
    )
    log.info("renewal addKey accountId=%s outcome=%s", current.id, write.outcome)
    return _record_add_key(ctx, current, rotation, write)


def _record_add_key(
    ctx: AppContext, account: Account, rotation: Rotation, write: GraphWrite
) -> Account:
    """addKey's outcome, written on the rotation as it is now. A rotation that ended while the
    addKey was on its way gets no certificate it no longer awaits: it is taken back."""
    ended: list[Rotation] = []

    def decide(current: Account) -> rotations.Change | None:
        latest = current.rotation
        if latest is None or latest.key_id != rotation.key_id:
            ended[:] = [rotation]  # replaced by another rotation meanwhile
            return None
        if latest.status in ("cancelled", "failed"):
            ended[:] = [latest]
            return None
        ended.clear()
        amended = latest.updated(**_add_key_outcome(latest, write))
        return None if amended == latest else rotations.Change(current.updated(rotation=amended))

    saved = rotations.transition(ctx, account, decide)
    if ended and write.outcome != "refused":
        return take_back(ctx, saved, ended[0], landed=write.outcome == "done")
    return saved


def _add_key_outcome(rotation: Rotation, write: GraphWrite) -> dict[str, Any]:
    """The changes addKey's outcome makes to the rotation as it is now (awaiting its upload, or
    completed: Entra accepted the certificate meanwhile)."""
    done = write.outcome == "done"
    if rotation.add_key == "done":
        return {}
    if not rotation.in_progress:
        return {"add_key": "done"} if done else {}
    if rotation.add_key != "pending":  # handed over to the customer, or refused meanwhile
        if not done or rotation.add_key is not None:
            return {}
        return {
            "add_key": "done",
            "detail": awaiting(rotation.key, CERTIFICATE, False, switched=True, added=True),
        }
    if done:
        return {
            "add_key": "done",
            "detail": f"The app added the new certificate {rotation.thumbprint} to its app "
            "registration (Microsoft Graph addKey). Entra takes up to a few minutes to accept a "
            "new certificate; the account switches to it at the first verification after that.",
        }
    if write.outcome == "refused":
        return {
            "add_key": "refused",
            "detail": f"{write.words()} Upload the new certificate {rotation.thumbprint} by hand "
            f"(GET /api/keys/{rotation.key_id}?format=cer) under App registrations > your app > "
            "Certificates & secrets; the account switches to it once Entra accepts it.",
        }
    return {"detail": f"{write.words()} The app tries again at the next health check."}


def remove_from_registration(
    ctx: AppContext, account: Account, thumbprint: str, signer: ProofKey | None = None
) -> GraphWrite:
    """removeKey of one certificate from the app registration, the proof signed by `signer`
    (by default the account's current key)."""
    proof = signer or ProofKey(account.key_id, account.thumbprint)
    return _own_write(
        ctx,
        account,
        proof,
        lambda tenant, graph, token, object_id, signs: own_credentials.remove_certificate(
            tenant,
            graph,
            token,
            object_id=object_id,
            thumbprint=thumbprint,
            signer=signs,
            signer_thumbprint=proof.thumbprint,
            own_removal=not account.thumbprint,  # a federated account: the certificate leaves
        ),
        "removeKey",
    )


def _remove_if_automatic(
    ctx: AppContext, account: Account, thumbprint: str, key_id: str | None = None
) -> GraphWrite | None:
    """removeKey of `thumbprint` (of key `key_id`, still there to sign its own removal when the
    account has no certificate), made only if a fresh read of the account still has automatic
    renewal (None: not made, the customer removes it by hand)."""
    current = rotations.fresh(ctx, account)
    if current.certificate_renewal != "automatic":
        return None
    signer = proof_key(current, key_id, thumbprint) if key_id else None
    return remove_from_registration(ctx, current, thumbprint, signer)


def remove_replaced(ctx: AppContext, account: Account, replaced: Rotation) -> Account:
    """removeKey of the certificate the last rotation replaced (its key retired early by the
    rotation just started, and not deleted before this), said in the new rotation's `detail`
    when it is left to do by hand; a replaced federated credential is always the customer's."""
    thumbprint = replaced.previous_thumbprint
    if not thumbprint:
        record = ctx.accounts.get_key(account.owner, replaced.previous_key_id)
        said = f" {remove_federated_steps(record, replaced, account.application_id)}"
    elif replaced.remove_key != "pending":
        return account  # by hand, as the last rotation's detail said
    else:
        said = _removal_words(
            _remove_if_automatic(ctx, account, thumbprint, replaced.previous_key_id), thumbprint
        )
    assert account.rotation is not None
    return rotations.amend(
        ctx,
        account,
        account.rotation.key_id,
        "awaiting_upload",
        lambda rotation: rotation.updated(detail=f"{rotation.detail or ''}{said}".strip()),
    )


def _removal_words(write: GraphWrite | None, thumbprint: str) -> str:
    if write is not None and write.outcome == "done":
        return f" The previous certificate {thumbprint} was removed from the app registration."
    why = f" {write.words(again=False)}" if write is not None else ""
    return f"{why} Remove the previous certificate {thumbprint} from the app registration by hand."


def take_back(ctx: AppContext, account: Account, ended: Rotation, *, landed: bool) -> Account:
    """A rotation ended (cancelled, failed, replaced) with its certificate added, or perhaps
    added (`landed` False: addKey's answer was lost) by the app: remove it from the app
    registration again, while automatic renewal is on; else the ended rotation's `detail`
    asks the customer to."""
    thumbprint = ended.thumbprint
    write = _remove_if_automatic(ctx, account, thumbprint)
    if write is not None and write.outcome == "done":
        if write.key_credential_id is None:  # not on the app registration: nothing to say
            return rotations.fresh(ctx, account)
        said = f" Its certificate {thumbprint} was removed from the app registration."
    else:
        why = f" {write.words(again=False)}" if write is not None else ""
        added = "added" if landed else "may have added"
        said = (
            f" The app {added} its certificate {thumbprint} to the app registration.{why} "
            f"Remove certificate {thumbprint} from the app registration by hand."
        )
    log.info(
        "ended renewal's certificate taken back accountId=%s outcome=%s",
        account.id,
        write.outcome if write is not None else "by hand",
    )
    return rotations.amend(
        ctx,
        account,
        ended.key_id,
        ended.status,
        lambda rotation: rotation.updated(
            add_key="done" if landed else rotation.add_key,
            detail=f"{rotation.detail or ''}{said}".strip(),
        ),
    )


def _own_write(
    ctx: AppContext, account: Account, proof: ProofKey, call: GraphCall, operation: str = "addKey"
) -> GraphWrite:
    """Sign in with the current credential, find the application object, and make one write
    whose proof the certificate `proof` signs. No certificate (a federated credential has no
    key of its own): nothing is asked of Graph, nor of any key store."""
    if not proof.thumbprint:
        return GraphWrite(
            "refused",
            message="No certificate of the app can sign the proof Graph asks for: the account "
            "signs in with a federated credential.",
            operation=operation,
        )
    sign_in = signed_in(ctx, account)
    if sign_in.token is None or not sign_in.token.access_token:
        return GraphWrite(
            "transient" if sign_in.transient else "refused",
            message=f"The app could not sign in to make the change: {sign_in.problem}.",
        )
    token = sign_in.token.access_token
    tenant = ctx.tenant_client()
    object_id = _object_id_from_report(account)
    if object_id is None:
        found = own_credentials.application_object_id(
            tenant, sign_in.graph, token, account.application_id
        )
        if isinstance(found, GraphWrite):
            return found
        object_id = found
    try:
        signer = ctx.signer_of_key(account.owner, proof.key_id)
        return call(tenant, sign_in.graph, token, object_id, signer)
    except Exception as failure:  # the key store could not sign the proof: nothing was sent
        cause = failure.cause if isinstance(failure, KeyUnavailable) else failure
        return GraphWrite(
            "transient", message=f"The current key could not sign ({type(cause).__name__})"
        )


def _object_id_from_report(account: Account) -> str | None:
    """The application's object id as the last verification's Graph read gave it."""
    report = account.last_verification or {}
    registration = report.get("appRegistration")
    if not isinstance(registration, dict):
        return None
    value = registration.get("objectId")
    return parse_guid(value) if isinstance(value, str) else None
