"""Which permissions only read, and Microsoft's built-in role table (shared/core/roles.py)."""

from __future__ import annotations

import pytest

from shared.core import roles
from shared.core.directory_roles import BUILT_IN_ROLES
from shared.support.guid import is_canonical_guid


@pytest.mark.parametrize(
    "permission",
    [
        "AccessReview.Read.All",
        "User.Read.All",
        "AuditLog.Read.All",
        "User.ReadBasic.All",
        "Sites.Read.All",
        "RoleManagement.Read.Directory",
        "Member.Read.Hidden",
        "User-LifeCycleInfo.Read.All",
        "eDiscovery.Read.All",
        "Mail.Read",
    ],
)
def test_read_permissions(permission: str) -> None:
    assert roles.is_read_permission(permission)


@pytest.mark.parametrize(
    "permission",
    [
        "User.ReadWrite.All",
        "Directory.ReadWrite.All",
        "Mail.Send",
        "Sites.FullControl.All",
        "Sites.Selected",
        "Sites.Manage.All",
        "User.RevokeSessions.All",
        "User.EnableDisableAccount.All",
        "DeviceManagementManagedDevices.PrivilegedOperations.All",
        "Calls.Initiate.All",
        "Calls.AccessMedia.All",
        "Application.ReadWrite.OwnedBy",
        "TeamsAppInstallation.ReadForUser.All",  # not `Read`: cannot be confirmed read-only
        "User.Read.All.Write",  # anything after the scope
        "User.Read.All\n",
        ".Read.All",
        "Read",
        "",
    ],
)
def test_anything_else_is_not_a_read_permission(permission: str) -> None:
    assert not roles.is_read_permission(permission)


def test_the_table_holds_every_built_in_role_once_by_canonical_template_id() -> None:
    ids = [r.template_id for r in BUILT_IN_ROLES]
    assert len(ids) >= 130  # Microsoft's permissions reference lists about 130
    assert len(set(ids)) == len(ids)
    assert all(is_canonical_guid(i) for i in ids)
    assert len({r.name for r in BUILT_IN_ROLES}) == len(ids)
    assert roles.SERVICE_PRINCIPAL_DEFAULT not in ids


@pytest.mark.parametrize(
    "name",
    [
        "Global Reader",
        "Directory Readers",
        "Security Reader",
        "Reports Reader",
        "Message Center Reader",
        "Message Center Privacy Reader",
        "Usage Summary Reports Reader",
        "Global Secure Access Log Reader",
        "Teams Reader",
    ],
)
def test_reader_roles_are_read_only(name: str) -> None:
    template = next(r.template_id for r in BUILT_IN_ROLES if r.name == name)
    assert roles.role_kind(template) is roles.RoleKind.READ_ONLY
    assert roles.role_name(template.upper()) == name


@pytest.mark.parametrize(
    ("template", "name"),
    [
        ("62e90394-69f5-4237-9190-012177145e10", "Global Administrator"),
        ("7698a772-787b-4ac8-901f-60d6b08affd2", "Cloud Device Administrator"),
        ("9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3", "Application Administrator"),
        ("5c4f9dcd-47dc-4cf7-8c9a-9e4207cbfc91", "Customer LockBox Access Approver"),
        ("e48398e2-f4bb-4074-8f31-4586725e205b", "Organizational Messages Approver"),
        ("9c094953-4995-41c8-84c8-3ebb9b32c93f", "Device Join"),  # deprecated, still returned
    ],
)
def test_roles_that_change_something_are_known_by_name_and_not_read_only(
    template: str, name: str
) -> None:
    assert roles.role_kind(template) is roles.RoleKind.WRITES
    assert roles.role_name(template) == name


def test_no_role_that_administers_approves_or_writes_is_read_only() -> None:
    doers = ("Administrator", "Approver", "Writer", "Author", "Operator", "Editor", "Developer")
    for role in BUILT_IN_ROLES:
        if any(word in role.name for word in doers):
            assert not role.read_only, role


def test_unknown_ids_and_the_default_membership() -> None:
    custom = "3b2c1a00-aaaa-4bbb-8ccc-123456789abc"
    assert roles.role_kind(custom) is roles.RoleKind.UNKNOWN
    assert roles.role_name(custom) == custom
    assert roles.role_kind(roles.SERVICE_PRINCIPAL_DEFAULT.upper()) is roles.RoleKind.DEFAULT
    shown = roles.shown_roles(
        [roles.GLOBAL_READER, roles.SERVICE_PRINCIPAL_DEFAULT, roles.GLOBAL_READER.upper(), custom]
    )
    assert shown == ["Global Reader", custom]
