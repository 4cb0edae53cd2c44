"""What the app's token grants: directory roles by template id, and which permissions only read.

Used by the `directory_role` and `least_privilege` checks. Both rules are allow-lists: a
permission is read-only only when its action part says so, and a role only when Microsoft's
built-in role table (`shared/directory_role_table.py`) marks it read-only. Anything else, including
a role id the table does not know (a custom role), is never assumed harmless.
"""

from __future__ import annotations

import re
from enum import Enum

from shared.core.directory_roles import BUILT_IN_ROLES

GLOBAL_READER = "f2ef992c-3afb-46b9-b7cf-a126ee74c451"
REQUIRED_PERMISSION = "AccessReview.Read.All"
# Entra adds this id to the `wids` of service principals beside their real roles: the default
# membership of every service principal, not an assignable role. Recognised, never shown.
SERVICE_PRINCIPAL_DEFAULT = "0997a1d0-0d1d-4acb-b408-d5ca73121e90"

ROLE_NAMES: dict[str, str] = {r.template_id: r.name for r in BUILT_IN_ROLES}
READ_ONLY_ROLES: frozenset[str] = frozenset(r.template_id for r in BUILT_IN_ROLES if r.read_only)

# `Resource.Action[.Scope]` where the action is `Read` or `ReadBasic`: `User.Read.All`,
# `AuditLog.Read.All`, `User.ReadBasic.All`, `RoleManagement.Read.Directory`, `Mail.Read`.
# Names such as `Sites.Selected`, `User.RevokeSessions.All` or `Calls.Initiate.All` grant actions
# without saying "Write", which is why a deny-list cannot work.
_READ_PERMISSION = re.compile(r"[A-Za-z][A-Za-z0-9-]*\.(?:Read|ReadBasic)(?:\.[A-Za-z0-9]+)?")


class RoleKind(Enum):
    READ_ONLY = "read_only"
    WRITES = "writes"  # a built-in role that can change something
    UNKNOWN = "unknown"  # not a built-in role this table knows: cannot confirm it only reads
    DEFAULT = "default"  # the service principal's default membership


def is_read_permission(permission: str) -> bool:
    return bool(_READ_PERMISSION.fullmatch(permission))


def role_kind(template_id: str) -> RoleKind:
    role = template_id.lower()
    if role == SERVICE_PRINCIPAL_DEFAULT:
        return RoleKind.DEFAULT
    if role in READ_ONLY_ROLES:
        return RoleKind.READ_ONLY
    if role in ROLE_NAMES:
        return RoleKind.WRITES
    return RoleKind.UNKNOWN


def role_name(template_id: str) -> str:
    """A role's display name, or its id when Microsoft's table here does not know it."""
    return ROLE_NAMES.get(template_id.lower(), template_id)


def shown_roles(role_ids: list[str]) -> list[str]:
    """The role names the customer sees: each role once, the default membership left out."""
    ids = dict.fromkeys(r.lower() for r in role_ids)
    return [role_name(r) for r in ids if r != SERVICE_PRINCIPAL_DEFAULT]
