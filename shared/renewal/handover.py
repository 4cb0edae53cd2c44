"""Who does the rest of a rotation, the app or the customer, and what its `detail` says.

`certificateRenewal` names who makes the Graph writes a rotation still needs (addKey of its new
certificate, removeKey of the replaced one at retirement): `automatic`, the app; `manual`, the
customer by hand. PATCH changes the setting and hands a rotation over in the same write
(`follow_renewal`); the words here tell the customer what happens next either way.
"""

from __future__ import annotations

from shared.core.model import Account, Rotation
from shared.support.timefmt import to_rfc3339


def awaiting(
    thumbprint: str, key_id: str, automatic: bool, *, switched: bool = False, added: bool = False
) -> str:
    """A rotation in progress: what happens next, and who does it (after `switched`: the
    renewal setting changed; `added`: the app's addKey had landed)."""
    said = f"Automatic renewal was switched {'on' if automatic else 'off'}. " if switched else ""
    if added:
        return (
            f"{said}The app has added the new certificate {thumbprint} to its app registration, "
            "so there is nothing to upload: the account switches to it as soon as Entra accepts it."
        )
    if automatic:
        return (
            f"{said}The app adds the new certificate {thumbprint} to its app registration itself; "
            "the account switches to it as soon as Entra accepts it."
        )
    return (
        f"{said}Upload the new certificate {thumbprint} (GET /api/keys/{key_id}?format=cer) under "
        "App registrations > your app > Certificates & secrets, and leave the old one until the "
        "account has switched."
    )


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
        followed = rotation.updated(
            renewal=renewal,
            add_key="done" if added else ("pending" if automatic else None),
            detail=awaiting(
                rotation.thumbprint, rotation.key_id, automatic, switched=True, added=added
            ),
        )
    elif rotation.retiring:
        followed = rotation.updated(
            renewal=renewal,
            remove_key="pending" if automatic else None,
            detail=_retiring(rotation, automatic),
        )
    else:
        return account
    return account.updated(rotation=followed)


def _retiring(rotation: Rotation, automatic: bool) -> str:
    when = to_rfc3339(rotation.retire_after) if rotation.retire_after else "the retirement"
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
