"""The accounts a timer run verifies: taken from the account store's schedule a batch at a time
as workers ask for them, each leased to the run while it works on it, and released when done.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from datetime import UTC, datetime, timedelta

from shared.adapters.accountstore.base import AccountStore, VersionConflict
from shared.core.errors import AppError
from shared.core.model import Account
from shared.core.schedule import SchedulePolicy
from shared.support import telemetry as t
from shared.support.deadline import deadline

log = logging.getLogger("m365link.health_check")


class DueAccounts:
    """The accounts due by `due_by`, taken from the schedule a batch at a time as workers ask
    for them, each leased to this run (`holder`) until it releases it."""

    def __init__(
        self,
        store: AccountStore,
        *,
        due_by: datetime,
        batch: int,
        lease: timedelta,
        stop_at: float,
        shortest: float,
    ) -> None:
        self.store, self.due_by, self.batch, self.lease = store, due_by, batch, lease
        self.stop_at, self.shortest = stop_at, shortest  # `time.monotonic()`, seconds
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._taken: deque[Account] = deque()
        self._seen: set[str] = set()  # handed out in this run (interval 0: due again)
        self._kept: list[Account] = []  # met again: leased (so not met again) until the run ends
        self._lock = threading.Lock()
        self._exhausted = False

    def next(self) -> tuple[Account, float] | None:
        """The next due account and the seconds left of the run; None once no account is due
        or less than `shortest` is left."""
        with self._lock:
            while True:
                left = self.stop_at - time.monotonic()
                if left < self.shortest:
                    return None
                if self._taken or self._exhausted:
                    break
                self._take(left)
            if not self._taken:
                return None
            account = self._taken.popleft()  # never seen: `_take` keeps those out
            self._seen.add(account.id)
            return account, left

    def _take(self, left: float) -> None:
        """The next batch; `_exhausted` once no unleased account is due (the store never answers
        an empty batch because another instance took the one it met: it looks further)."""
        try:
            with deadline(left):
                batch = self.store.take_due(self.due_by, self.batch, self.lease, self.holder)
        except (AppError, VersionConflict) as error:
            log.warning("due accounts not read: %s", error.detail)
            batch = []
        self._exhausted = not batch
        self._kept += [a for a in batch if a.id in self._seen]
        self._taken.extend(a for a in batch if a.id not in self._seen)

    def release(self, accounts: list[Account]) -> None:
        """End this run's lease of the accounts (one not ended lapses by itself)."""
        if not accounts:
            return
        try:
            with deadline(max(self.stop_at - time.monotonic(), 1.0)):
                self.store.release(accounts, self.holder)
        except (AppError, VersionConflict) as error:
            log.warning("leases not released (they lapse by themselves): %s", error.detail)

    def finish(self) -> int:
        """Release the accounts taken but not reached, and those met again, so the next run
        starts with them (still the stalest); how many were not reached."""
        not_reached = len(self._taken)
        self.release([*self._taken, *self._kept])
        return not_reached

    def not_reached(self) -> list[Account]:
        """The due accounts taken but not verified by this run, stalest first."""
        return list(self._taken)


def record_backlog(left: list[Account], policy: SchedulePolicy, at: datetime) -> None:
    """The run's end in the metrics: how many due accounts it did not reach (`left`, stalest
    first), and how long the oldest of them has been due at `at` (0 when none). A gauge
    holds no account id: an operator learns the timer falls behind, not which accounts."""
    t.gauge(t.TIMER_BACKLOG, "{account}", "due accounts a timer run did not reach").set(len(left))
    lag = 0.0
    if left:
        due_ms = int(policy.place(left[0]).due_under(policy.interval))
        lag = max(at.timestamp() - due_ms / 1000, 0.0)
    t.gauge(t.TIMER_LAG, "s", "how long the oldest due account not reached has been due").set(lag)


def run_clock(due_by: datetime, elapsed_seconds: float) -> datetime:
    """The run's clock at its end: its start (`due_by`, injected by tests) plus the time spent."""
    return due_by.astimezone(UTC) + timedelta(seconds=elapsed_seconds)
