"""What the token grants: admin consent (its `roles`), the Global Reader role (its `wids`, or
else the service principal's `memberOf`), and least privilege over both."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.core import roles
from shared.core.answers import GraphAnswer
from shared.verification.checks.answers import NOT_READ, Answers, GraphRead
from shared.verification.checks.check import Check, unreachable

_WIDS = "token's wids claim"
_MEMBER_OF = "service principal's memberOf"


def consent_check(claims: dict[str, Any]) -> Check:
    granted = claim_list(claims, "roles")
    if roles.REQUIRED_PERMISSION in granted:
        return Check("admin_consent", "pass", "The token carries AccessReview.Read.All.")
    return Check(
        "admin_consent",
        "fail",
        "The app's token does not carry the Microsoft Graph application permission "
        "AccessReview.Read.All: it is not added, or admin consent was not granted.",
        "In the Entra admin center open App registrations > your app > API permissions > Add a "
        "permission > Microsoft Graph > Application permissions, select AccessReview.Read.All, "
        "then press 'Grant admin consent for <your organisation>'.",
    )


def claim_list(claims: dict[str, Any], name: str) -> list[str]:
    """A list claim's strings (`roles`, `wids`); anything else in the claim counts as nothing."""
    values = claims.get(name)
    return [v for v in values if isinstance(v, str)] if isinstance(values, list) else []


def role_ids_from_claims(claims: dict[str, Any]) -> list[str] | None:
    """The token's directory role template ids, or None when it carries no `wids` claim."""
    if claims.get("wids") is None:
        return None
    return [w.lower() for w in claim_list(claims, "wids")]


def role_ids_from_member_of(answer: GraphAnswer) -> list[str]:
    """Role template ids from `memberOf/microsoft.graph.directoryRole`: the cast already keeps
    only directory roles, so an entry may leave out its `@odata.type`; another type is ignored."""
    ids = []
    for entry in (answer.body or {}).get("value", []):
        kind = entry.get("@odata.type", "#microsoft.graph.directoryRole")
        if kind == "#microsoft.graph.directoryRole" and entry.get("roleTemplateId"):
            ids.append(str(entry["roleTemplateId"]).lower())
    return ids


def _without_wids(claims: dict[str, Any]) -> bool:
    return role_ids_from_claims(claims) is None


# The app's directory roles, read only when the token carries no `wids` (which say it all);
# the cast keeps only directory roles, and every page of them is read.
MEMBER_OF = GraphRead(
    "member_of",
    "/servicePrincipals(appId='{application_id}')/memberOf/microsoft.graph.directoryRole",
    every_page=True,
    when=_without_wids,
)

_ROLE_REMEDIATION = (
    "In the Entra admin center open Roles & admins > Global Reader > Add assignments, select "
    "your app, and press Add. Role changes can take up to 15 minutes to apply."
)


def directory_role_check(role_ids: list[str], source: str) -> Check:
    if roles.GLOBAL_READER in role_ids:
        return Check("directory_role", "pass", f"The app holds the Global Reader role ({source}).")
    return Check(
        "directory_role",
        "fail",
        f"The app does not hold the Global Reader role ({source}).",
        _ROLE_REMEDIATION,
    )


def member_of_failure(answer: GraphAnswer) -> Check:
    if answer.transient and answer.status is None and answer.message:
        return Check(
            "directory_role",
            "error",
            f"The app's directory roles could not be read to the end: {answer.message}. The "
            "check runs again at the next verification.",
        )
    if answer.transient:
        return unreachable("directory_role", "Microsoft Graph", answer.status, answer.message)
    return Check(
        "directory_role",
        "fail",
        f"The app's directory roles could not be read (HTTP {answer.status}"
        f"{', ' + answer.code if answer.code else ''}); without Global Reader it cannot read them.",
        _ROLE_REMEDIATION,
        answer.code,
    )


_LEAST_PRIVILEGE_REMEDIATION = (
    "Remove what is not needed: App registrations > your app > API permissions > (…) > "
    "Remove permission, then grant admin consent again; and Roles & admins > the role > "
    "Assignments > select your app > Remove assignments."
)


def least_privilege_check(
    claims: dict[str, Any],
    role_ids: list[str] | None,
    source: str,
    roles_failure: GraphAnswer | None = None,
) -> Check:
    """Every permission must be a read permission and every role a read-only built-in role.

    `role_ids` is None when the roles could not be read (no `wids`, `memberOf` failed, see
    `roles_failure`): then the check is `error` (transient) or `skipped`, never `pass`.
    """
    permissions = sorted(set(claim_list(claims, "roles")))
    not_read = [p for p in permissions if not roles.is_read_permission(p)]
    if role_ids is None:
        return _roles_not_read(not_read, roles_failure or GraphAnswer(status=None))
    unique = list(dict.fromkeys(r.lower() for r in role_ids))
    kinds = {r: roles.role_kind(r) for r in unique}
    writing = sorted(roles.role_name(r) for r, k in kinds.items() if k is roles.RoleKind.WRITES)
    unknown = sorted(r for r, k in kinds.items() if k is roles.RoleKind.UNKNOWN)
    read_only = sorted(
        roles.role_name(r) for r, k in kinds.items() if k is roles.RoleKind.READ_ONLY
    )
    if not not_read and not writing and not unknown:
        granted = ", ".join(permissions) if permissions else "none"
        held = ", ".join(read_only) if read_only else "none"
        return Check(
            "least_privilege",
            "pass",
            f"Every application permission of the app is a read permission ({granted}) and "
            f"every directory role it holds is a read-only built-in role ({held}); roles read "
            f"from the {source}.",
        )
    parts = []
    if not_read:
        parts.append("application permissions that are not read-only: " + ", ".join(not_read))
    if writing:
        parts.append("directory roles that can change the tenant: " + ", ".join(writing))
    if unknown:
        parts.append(
            "directory roles the app cannot name, so it cannot confirm they are read-only "
            "(custom roles?): " + ", ".join(unknown)
        )
    return Check(
        "least_privilege",
        "warn",
        "The portal needs read-only access, but the app also has " + "; ".join(parts) + ".",
        _LEAST_PRIVILEGE_REMEDIATION,
    )


def _roles_not_read(not_read: list[str], failure: GraphAnswer) -> Check:
    """`least_privilege` when the roles could not be read: `error` (transient) or `skipped`."""
    also = (
        " Application permissions that are not read-only: " + ", ".join(not_read) + "."
        if not_read
        else ""
    )
    answer = (
        failure.message
        if failure.status is None and failure.message
        else f"HTTP {failure.status}" + (f", {failure.code}" if failure.code else "")
    )
    if failure.transient:
        return Check(
            "least_privilege",
            "error",
            f"The app's directory roles could not be read ({answer}), so it is not known "
            "whether its access is read-only. The check runs again at the next "
            "verification." + also,
        )
    return Check(
        "least_privilege",
        "skipped",
        f"Not checked: the app's directory roles could not be read ({answer}), so it is not "
        "known whether its access is read-only." + also,
        code=failure.code,
    )


# --- from the answers ---------------------------------------------------------------------------
@dataclass(frozen=True)
class RolesRead:
    ids: list[str] | None  # None: could not be read (no `wids`, `memberOf` failed)
    found: list[str]  # what was read, a partial listing included
    source: str
    failure: GraphAnswer | None = None


def roles_read(answers: Answers) -> RolesRead:
    """The app's directory role template ids: the token's `wids`, or else `memberOf`."""
    from_claims = role_ids_from_claims(answers.claims)
    if from_claims is not None:
        return RolesRead(from_claims, from_claims, _WIDS)
    member_of = answers.read(MEMBER_OF)
    found = role_ids_from_member_of(member_of)
    if member_of.ok:
        return RolesRead(found, found, _MEMBER_OF)
    return RolesRead(None, found, _MEMBER_OF, member_of)


def directory_role_of(answers: Answers) -> Check:
    """`directory_role` from the roles read (a page of `memberOf` holding the role counts)."""
    read = roles_read(answers)
    if read.source == _WIDS:
        return directory_role_check(read.found, "token wids claim")
    if read.ids is not None or roles.GLOBAL_READER in read.found:
        return directory_role_check(read.found, "service principal memberOf")  # a page counts
    return member_of_failure(read.failure or NOT_READ)


def least_privilege_of(answers: Answers) -> Check:
    read = roles_read(answers)
    return least_privilege_check(answers.claims, read.ids, read.source, read.failure)
