"""When an account is next due for the timer: the order of the health check's schedule.

An account is due when it has not been verified for HEALTH_CHECK_INTERVAL_HOURS (never verified:
at once), or earlier when its renewal needs the timer: the replaced key's retirement, a
rotation's new certificate expiring (the rotation then fails), or the certificate entering the
CERT_EXPIRY_WARNING_DAYS window (the timer starts a renewal; once per entry into the window, so
an account inside it is not due at every run).

The stores keep each account's due time beside it (SQLite: an indexed column; Table Storage: a
schedule partition ordered by due time) and compute it with this policy on every write, so the
timer finds due accounts without reading any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.records import Account
from shared.timefmt import from_rfc3339


@dataclass(frozen=True)
class SchedulePolicy:
    interval: timedelta = timedelta(hours=6)
    warning: timedelta = timedelta(days=30)

    def due_at(self, account: Account) -> datetime:
        started = _started(account)
        moments = [started + self.interval if started is not None else account.created_at]
        rotation = account.rotation
        if rotation is not None and rotation.retiring and rotation.retire_after is not None:
            moments.append(rotation.retire_after)
        if rotation is not None and rotation.in_progress:
            moments.append(rotation.not_after)
        else:
            window = account.renewal_window(self.warning)
            if started is None or started < window:
                moments.append(window)
        return min(moments)


DEFAULT_POLICY = SchedulePolicy()


def _started(account: Account) -> datetime | None:
    """When the last verification started, to the millisecond (its report's `startedAt`), so
    that a timer run, which takes accounts due by the moment it started, never meets again an
    account it verified itself, even with an interval of 0; `lastVerifiedAt` (whole seconds)
    for a report without it."""
    report = account.last_verification or {}
    started = report.get("startedAt")
    if isinstance(started, str):
        try:
            return from_rfc3339(started)
        except ValueError:
            pass
    return account.last_verified_at


def due_key(moment: datetime) -> str:
    """A due time as text that sorts as the time does (milliseconds since the epoch)."""
    return f"{max(round(moment.timestamp() * 1000), 0):015d}"
