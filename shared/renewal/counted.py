"""Rotations in the metrics: one count per transition this process wrote (started, completed,
cancelled, failed), by the kind of the new key. No account id: the count is for the fleet."""

from __future__ import annotations

from shared.support import telemetry as t


def rotation(status: str, kind: str) -> None:
    """Count one rotation moved to `status`; `kind`: certificate | federated (its new key's)."""
    t.counter(t.ROTATIONS, description="rotations by status and kind").add(
        1, {t.ROTATION_STATUS: status, t.ROTATION_KIND: kind}
    )
