"""Field rules of API.md, applied to a parsed JSON object. Every bad field is named at once."""

from __future__ import annotations

import unicodedata
from collections.abc import Collection, Mapping
from typing import Any

from shared.core.errors import Problems
from shared.support.guid import is_guid, parse_guid

__all__ = ["Fields", "has_control_characters", "is_guid"]


# Bidi embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069) can make a name read
# differently from what it is (a file name "cer.exe" shown reversed). Other format characters
# (Cf: the zero-width joiner of emoji sequences, RTL marks) are ordinary text and allowed.
_SPOOFING = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))
_CONTROL_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})


def has_control_characters(value: str) -> bool:
    """Control characters, line/paragraph separators, or a bidi override/isolate."""
    return any(ch in _SPOOFING or unicodedata.category(ch) in _CONTROL_CATEGORIES for ch in value)


class Fields:
    """Reads fields from a request object, collecting problems instead of failing on the first."""

    def __init__(self, body: Mapping[str, Any]) -> None:
        self.body = body
        self.problems = Problems()

    def _present(self, name: str, required: bool) -> bool:
        if name not in self.body or self.body[name] is None:
            if required:
                self.problems.add(name, "is required")
            return False
        return True

    def guid(self, name: str, *, required: bool = True) -> str:
        if not self._present(name, required):
            return ""
        value = parse_guid(self.body[name])
        if value is None:
            self.problems.add(name, "must be a GUID such as 00000000-0000-0000-0000-000000000000")
            return ""
        return value

    def text(
        self, name: str, *, max_len: int, required: bool = True, min_len: int = 1
    ) -> str | None:
        if not self._present(name, required):
            return None
        value = self.body[name]
        if not isinstance(value, str):
            self.problems.add(name, "must be a string")
            return None
        if not min_len <= len(value) <= max_len:
            self.problems.add(name, f"must be {min_len} to {max_len} characters")
            return None
        if has_control_characters(value):
            self.problems.add(name, "must not contain control characters")
            return None
        if not value.strip():
            self.problems.add(name, "must not be blank")
            return None
        return value

    def integer(self, name: str, *, default: int, lo: int, hi: int) -> int:
        if not self._present(name, False):
            return default
        value = self.body[name]
        if isinstance(value, bool) or not isinstance(value, int):
            self.problems.add(name, "must be an integer")
            return default
        if not lo <= value <= hi:
            self.problems.add(name, f"must be between {lo} and {hi}")
            return default
        return value

    def one_of(self, name: str, allowed: Collection[Any], *, default: Any) -> Any:
        if not self._present(name, False):
            return default
        value = self.body[name]
        # Same type as well as equal: 2048.0 == 2048 and True == 1, but neither is the integer 2048.
        if not any(type(value) is type(a) and value == a for a in allowed):
            shown = ", ".join(str(a) for a in allowed)
            self.problems.add(name, f"must be one of {shown}")
            return default
        return value

    def absent(self, name: str, because: str) -> None:
        """A field this request must not carry (it means nothing here, so it is refused
        rather than ignored)."""
        if self.body.get(name) is not None:  # null is the same as absent (API.md)
            self.problems.add(name, f"is not taken {because}")

    def done(self) -> None:
        self.problems.raise_if_any()
