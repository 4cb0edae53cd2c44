"""The one GUID parser: 8-4-4-4-12 hex digits, nothing before or after, any letter case.

Every id that arrives from outside (tenant, application, account, key) goes through here, so the
same tenant in another case is the same tenant and a trailing newline is never a GUID.
"""

from __future__ import annotations

import re
import uuid

# fullmatch, never match with `$`: `$` also matches before a trailing newline.
_FORM = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def parse_guid(value: object) -> str | None:
    """The canonical (lower-case) form of a GUID, or None when `value` is not exactly one."""
    if not isinstance(value, str) or not _FORM.fullmatch(value):
        return None
    return str(uuid.UUID(value))


def is_guid(value: object) -> bool:
    return parse_guid(value) is not None


def is_canonical_guid(value: object) -> bool:
    """Exactly the lower-case form this app stores (key ids in file names and vault names)."""
    return isinstance(value, str) and parse_guid(value) == value
