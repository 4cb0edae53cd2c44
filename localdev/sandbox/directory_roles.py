"""Built-in Entra directory roles the sandbox knows by name.

Why: customers assign roles by display name in the admin center, tokens carry role template ids in
`wids`, and Graph answers `memberOf` with both. The admin API accepts either form and this table
turns one into the other.
"""

from __future__ import annotations

import re

GLOBAL_READER = "f2ef992c-3afb-46b9-b7cf-a126ee74c451"
GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"
DIRECTORY_READERS = "88d8e3e3-8f55-4a1e-953a-9b9898b8876b"

# Entra adds this template id to the `wids` of every app-only token that carries `wids` at all.
DEFAULT_WIDS_ENTRY = "0997a1d0-0d1d-4acb-b408-d5ca73121e90"

ROLE_NAMES: dict[str, str] = {
    GLOBAL_READER: "Global Reader",
    GLOBAL_ADMINISTRATOR: "Global Administrator",
    "5d6b6bb7-de71-4623-b4af-96380a352509": "Security Reader",
    "4a5d8f65-41da-4de4-8968-e035b65339cf": "Reports Reader",
    DIRECTORY_READERS: "Directory Readers",
    "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3": "Application Administrator",
    "fe930be7-5e62-47db-91af-98c3a49a38b1": "User Administrator",
    "194ae4cb-b126-40b2-bd5b-6091b380977d": "Security Administrator",
    "e8611ab8-c189-46e8-94e1-60213ab1f814": "Privileged Role Administrator",
    "158c047a-c907-4556-b7ef-446551a6b5f7": "Cloud Application Administrator",
    "f28a1f50-f6e7-4571-818b-6a12f2af6b6c": "SharePoint Administrator",
    "29232cdf-9323-42fd-ade2-1d097af3e4de": "Exchange Administrator",
    "7698a772-787b-4ac8-901f-60d6b08affd2": "Cloud Device Administrator",
    "3a2c62db-5318-420d-8d74-23affee5d9d5": "Intune Administrator",
    "790c1fb9-7f7d-4f88-86a1-ef1f95c05c1b": "Message Center Reader",
    "75934031-6c7e-415a-99d7-48dbd49e875e": "Usage Summary Reports Reader",
}

# Roles that let a service principal read the directory (organization, service principals).
DIRECTORY_READING_ROLES: frozenset[str] = frozenset(
    {GLOBAL_READER, DIRECTORY_READERS, GLOBAL_ADMINISTRATOR}
)

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_TEMPLATE_BY_NAME = {name.casefold(): template for template, name in ROLE_NAMES.items()}


def is_guid(value: str) -> bool:
    """Whether `value` is written as a GUID (8-4-4-4-12 hex digits)."""
    return bool(_GUID.fullmatch(value))


def resolve_role(name_or_template_id: str) -> str:
    """The template id for a role given by display name (any case) or by template id.

    Template ids the sandbox does not know are kept as given (lower-cased), as Entra has roles this
    table does not list. Raises ValueError for a display name it does not know.
    """
    if is_guid(name_or_template_id):
        return name_or_template_id.lower()
    template = _TEMPLATE_BY_NAME.get(name_or_template_id.strip().casefold())
    if template is None:
        known = ", ".join(sorted(ROLE_NAMES.values()))
        raise ValueError(f"unknown directory role {name_or_template_id!r}; known roles: {known}")
    return template


def role_name(template_id: str) -> str:
    """The display name of a role template id, or the id itself when it is not known here."""
    return ROLE_NAMES.get(template_id, template_id)
