"""UTC time and its wire format: RFC 3339 with a `Z`, whole seconds (and milliseconds where an
order within one second matters: a report's `startedAt`)."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def to_rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_rfc3339_ms(value: datetime) -> str:
    """RFC 3339 with milliseconds (`2026-11-26T17:00:00.123Z`)."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def from_rfc3339(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
