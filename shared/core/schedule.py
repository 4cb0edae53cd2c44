"""When an account is due for the timer: the order of the health check's schedule.

An account is due when it has not been verified for the HEALTH_CHECK_INTERVAL_HOURS in force
when the timer runs (never verified: at once), or earlier when its renewal needs the timer:
the replaced key's retirement, a rotation's new certificate expiring (the rotation then fails),
or the certificate entering the CERT_EXPIRY_WARNING_DAYS window (the timer starts a renewal;
once per entry into the window, so an account inside it is not due at every run).

So the stores keep two moments beside each account, neither of which depends on the interval
(`Place`): `last`, when its last verification started (its creation if never verified), and
`renew`, the earliest of the absolute moments above. Both are indexed (SQLite: two columns;
Table Storage: two orderings of a schedule partition), and the timer reads the accounts whose
`last` is older than now minus the interval in force, and those whose `renew` has passed: two
bounded range reads merged stalest first, never every account. An operator who shortens the
interval (6 -> 1, or 0) has every account not verified within the new one taken at the next
run; one who lengthens it never makes an account wait longer than the new interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.core.model import Account
from shared.support.timefmt import from_rfc3339


@dataclass(frozen=True)
class Place:
    """Where an account stands in the schedule, as sortable keys (`due_key`)."""

    last: str  # when its last verification started; its creation when never verified
    renew: str | None  # the earliest renewal moment (absolute), or None

    def due_under(self, interval: timedelta) -> str:
        """The moment the account became (or becomes) due under `interval`: the merge order."""
        moments = [int(self.last) + round(interval.total_seconds() * 1000)]
        if self.renew is not None:
            moments.append(int(self.renew))
        return f"{max(min(moments), 0):015d}"


@dataclass(frozen=True)
class SchedulePolicy:
    # The HEALTH_CHECK_INTERVAL_HOURS of this process: the one in force when its timer runs.
    interval: timedelta = timedelta(hours=6)
    warning: timedelta = timedelta(days=30)

    def place(self, account: Account) -> Place:
        started = _started(account)
        last = started if started is not None else account.created_at
        return Place(due_key(last), _renewal(account, started, self.warning))

    def due_by(self, moment: datetime) -> tuple[str, str]:
        """The highest `last` and `renew` keys of accounts due by `moment`."""
        return due_key(moment - self.interval), due_key(moment)


DEFAULT_POLICY = SchedulePolicy()


def _renewal(account: Account, started: datetime | None, warning: timedelta) -> str | None:
    """The earliest absolute moment the account is due at, whatever the interval."""
    moments = [] if started is not None else [account.created_at]  # never verified: at once
    rotation = account.rotation
    if rotation is not None and rotation.retiring and rotation.retire_after is not None:
        moments.append(rotation.retire_after)
    if rotation is not None and rotation.in_progress:
        if rotation.not_after is not None:  # a new federated credential does not expire
            moments.append(rotation.not_after)
    else:
        window = account.renewal_window(warning)  # None: federated, never renewed
        if window is not None and (started is None or started < window):
            moments.append(window)
    return due_key(min(moments)) if moments else None


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
    """A moment as text that sorts as the time does (milliseconds since the epoch)."""
    return f"{max(round(moment.timestamp() * 1000), 0):015d}"
