"""Who does the rest of a rotation, the app or the customer, and what its `detail` says.

`certificateRenewal` names who makes the Graph writes a rotation still needs (addKey of its new
certificate, removeKey of the replaced one at retirement): `automatic`, the app; `manual`, the
customer by hand. PATCH changes the setting and hands a rotation over in the same write
(`follow_renewal`); the words here tell the customer what happens next either way.
"""

from __future__ import annotations

from typing import Any

from shared.core.model import Account, Rotation
from shared.renewal.credentials import (
    ADMIN_CENTER,
    CERTIFICATE,
    FEDERATED,
    add_federated_steps,
    app_adds,
    replaced_certificate,
    upload_steps,
)
from shared.support.timefmt import to_rfc3339


def awaiting(
    key: dict[str, Any],
    current_kind: str,
    automatic: bool,
    *,
    switched: bool = False,
    added: bool = False,
) -> str:
    """A rotation in progress to the new key resource `key`, the account still on a credential
    of `current_kind`: what happens next, and who does it (after `switched`: the renewal setting
    changed; `added`: the app's addKey had landed)."""
    said = f"Automatic renewal was switched {'on' if automatic else 'off'}. " if switched else ""
    thumbprint = key.get("thumbprint")
    leave = (
        "Leave the current credential in place until the account has switched."
        if current_kind == FEDERATED or key.get("kind") == FEDERATED
        else ""
    )
    if key.get("kind") == FEDERATED:
        why = (
            "The app cannot add a federated credential to its own app registration (that takes "
            "Application.ReadWrite, which it does not have), so this step is yours. "
            if automatic
            else ""
        )
        return f"{said}{why}{add_federated_steps(key)} {leave}"
    if added:
        return (
            f"{said}The app has added the new certificate {thumbprint} to its app registration, "
            "so there is nothing to upload: the account switches to it as soon as Entra accepts it."
        )
    if automatic and app_adds(CERTIFICATE, current_kind):
        return (
            f"{said}The app adds the new certificate {thumbprint} to its app registration itself; "
            "the account switches to it as soon as Entra accepts it."
        )
    if automatic:
        return (
            f"{said}The app cannot add this certificate itself: Graph's addKey needs a proof "
            "signed by a certificate the app registration already holds, and this account signs "
            f"in with a federated credential. {upload_steps(key)}. {leave}"
        )
    if leave:
        return f"{said}{upload_steps(key)}. {leave}"
    return f"{said}{upload_steps(key)}, and leave the old one until the account has switched."


def follow_renewal(account: Account) -> Account:
    """The account with its rotation handed to whoever `certificateRenewal` now names (applied
    by PATCH in the write that changes the setting). To `automatic`: the app takes over the
    Graph writes still to come (addKey of a rotation in progress, removeKey at retirement).
    To `manual`: those pending writes are dropped and `detail` says what the customer now does
    by hand. A finished rotation stays as it is."""
    rotation = account.rotation
    renewal = account.certificate_renewal
    if rotation is None or rotation.renewal == renewal:
        return account
    automatic = renewal == "automatic"
    if rotation.in_progress:
        added = rotation.add_key == "done"
        # The app adds only a certificate, with a proof from the account's current certificate.
        adds = automatic and app_adds(rotation.kind, account.credential)
        followed = rotation.updated(
            renewal=renewal,
            add_key="done" if added else ("pending" if adds else None),
            detail=awaiting(
                rotation.key, account.credential, automatic, switched=True, added=added
            ),
        )
    elif rotation.retiring:
        removes = automatic and replaced_certificate(rotation)  # never a federated credential
        followed = rotation.updated(
            renewal=renewal,
            remove_key="pending" if removes else None,
            detail=_retiring(rotation, automatic),
        )
    else:
        return account
    return account.updated(rotation=followed)


def _retiring(rotation: Rotation, automatic: bool) -> str:
    when = to_rfc3339(rotation.retire_after) if rotation.retire_after else "the retirement"
    if not replaced_certificate(rotation):
        return (
            f"Automatic renewal was switched {'on' if automatic else 'off'}; either way the app "
            "cannot remove the previous federated credential from the app registration: remove "
            f"it by hand ({ADMIN_CENTER} > Federated credentials) once it retires ({when})."
        )
    if automatic:
        return (
            f"Automatic renewal was switched on: the app removes the previous certificate "
            f"{rotation.previous_thumbprint} from its app registration when its key retires "
            f"({when})."
        )
    return (
        f"Automatic renewal was switched off: the app no longer removes the previous certificate "
        f"{rotation.previous_thumbprint}; remove it from the app registration by hand (App "
        f"registrations > your app > Certificates & secrets) once its key retires ({when})."
    )
