"""What the app's token grants: directory roles by template id, and which permissions can write.

Used by the `directory_role` and `least_privilege` checks. Template ids are Microsoft's built-in
role template ids (the Entra permissions reference); they are the same in every tenant.
"""

from __future__ import annotations

import re

GLOBAL_READER = "f2ef992c-3afb-46b9-b7cf-a126ee74c451"
REQUIRED_PERMISSION = "AccessReview.Read.All"

# Built-in roles that only read.
READ_ONLY_ROLES: dict[str, str] = {
    GLOBAL_READER: "Global Reader",
    "5d6b6bb7-de71-4623-b4af-96380a352509": "Security Reader",
    "4a5d8f65-41da-4de4-8968-e035b65339cf": "Reports Reader",
    "88d8e3e3-8f55-4a1e-953a-9b9898b8876b": "Directory Readers",
    "790c1fb9-7f7d-4f88-86a1-ef1f95c05c1b": "Message Center Reader",
    "75934031-6c7e-415a-99d7-48dbd49e875e": "Usage Summary Reports Reader",
}
# Built-in roles that can change something in the tenant.
WRITING_ROLES: dict[str, str] = {
    "62e90394-69f5-4237-9190-012177145e10": "Global Administrator",
    "e8611ab8-c189-46e8-94e1-60213ab1f814": "Privileged Role Administrator",
    "7be44c8a-adaf-4e2a-84d6-ab2649e08a13": "Privileged Authentication Administrator",
    "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3": "Application Administrator",
    "158c047a-c907-4556-b7ef-446551a6b5f7": "Cloud Application Administrator",
    "fe930be7-5e62-47db-91af-98c3a49a38b1": "User Administrator",
    "194ae4cb-b126-40b2-bd5b-6091b380977d": "Security Administrator",
    "5f2222b1-57c3-48ba-8ad5-d4759f1fde6f": "Security Operator",
    "29232cdf-9323-42fd-ade2-1d097af3e4de": "Exchange Administrator",
    "f28a1f50-f6e7-4571-818b-6a12f2af6b6c": "SharePoint Administrator",
    "69091246-20e8-4a56-aa4d-066075b2a7a8": "Teams Administrator",
    "b0f54661-2d74-4c50-afa3-1ec803f12efe": "Billing Administrator",
    "729827e3-9c14-49f7-bb1b-9608f156bbb8": "Helpdesk Administrator",
    "966707d0-3269-4727-9be2-8c3a10f19b9d": "Password Administrator",
    "c4e39bd9-1100-46d3-8c65-fb160da0071f": "Authentication Administrator",
    "3a2c62db-5318-420d-8d74-23affee5d9d5": "Intune Administrator",
    "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9": "Conditional Access Administrator",
    "17315797-102d-40b4-93e0-432062caca18": "Compliance Administrator",
    "4d6ac14f-3453-41d0-bef9-a3e0c569773a": "License Administrator",
    "fdd7a751-b60b-444a-984c-02652fe8fa1c": "Groups Administrator",
    "11648597-926c-4cf3-9c36-bcebb0ba8dcc": "Power Platform Administrator",
    "8ac3fc64-6eca-42ea-9e69-59f4c7b60eb2": "Hybrid Identity Administrator",
    "9360feb5-f418-4baa-8175-e2a00bac4301": "Directory Writers",
    "d29b2b05-8046-44ba-8758-1e26182fcf32": "Directory Synchronization Accounts",
}
KNOWN_ROLES = {**READ_ONLY_ROLES, **WRITING_ROLES}

# Application permissions that can change, send or administer something.
_WRITE_MARKERS = re.compile(
    r"ReadWrite|\.Write|\.Send|\.Manage|FullControl|\.Create|\.Delete|\.Invite|\.Import|"
    r"Impersonation|AccessAsApp|\.Migrate",
    re.IGNORECASE,
)


def role_name(template_id: str) -> str:
    """A role's display name, or its id when Microsoft's list here does not know it."""
    return KNOWN_ROLES.get(template_id.lower(), template_id)


def is_writing_permission(permission: str) -> bool:
    return bool(_WRITE_MARKERS.search(permission))


def is_writing_role(template_id: str) -> bool:
    return template_id.lower() in WRITING_ROLES
