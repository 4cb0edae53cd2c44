"""The timer's work: re-verify the accounts that are due, stalest first, then tidy the key store.

Due accounts come from the account store's schedule (`take_due`), a few at a time as workers
need them, so a run reads only due accounts and its memory does not grow with the fleet. Each
is leased to this run while it works on it (other writes, a customer's or another instance's
upkeep, keep the lease), so runs of several instances at once verify each due account once.
Each account's report is recorded as soon as it is ready (which also moves it on in the
schedule), then the run ends its lease, so a run that dies midway loses nothing already done;
a run keeps taking accounts while time is left and some are due (one that lost a batch to
another instance takes the next), and the next run starts with those it did not reach (they
are still the stalest). One account's failure never stops the others. Tokens
and warm MSAL application objects are reused, and a private key is read from the key store at
most once per run (only when the account has no warm application object).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.context import AppContext
from shared.core.errors import AppError
from shared.core.model import Account
from shared.renewal import renew as renewal
from shared.support.deadline import deadline
from shared.support.timefmt import utc_now
from shared.timer import housekeeping
from shared.verification.verify import record, run_checks

log = logging.getLogger("m365link.health_check")
# Less than this left of the budget could only record a timeout: the account waits for the next
# run, where it is among the stalest.
SHORTEST_ACCOUNT_SECONDS = 0.5
RECORD_SHARE = 0.1  # of an account's deadline, kept for writing its report


@dataclass
class RunSummary:
    accounts: int = 0
    checked: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    changed: int = 0
    failures: int = 0
    not_reached: int = 0
    keys_removed: int = 0
    deletions_finished: int = 0
    orphans_removed: int = 0
    duration_ms: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "accounts": self.accounts,
            "checked": self.checked,
            "connected": self.by_status["connected"],
            "actionRequired": self.by_status["action_required"],
            "error": self.by_status["error"],
            "changed": self.changed,
            "failures": self.failures,
            "notReached": self.not_reached,
            "keysRemoved": self.keys_removed,
            "deletionsFinished": self.deletions_finished,
            "orphansRemoved": self.orphans_removed,
            "durationMs": self.duration_ms,
        }


# A lease outlives the account's own deadline by this much, so it only lapses when the
# instance that holds it has died.
LEASE_MARGIN_SECONDS = 60
BATCH_PER_WORKER = 2  # due accounts taken from the schedule at a time, per worker
# The schedule's sweep (accounts missing from it put back): a pass begins once per interval, and
# each run goes on with it for at most these pages and this share of its budget.
SWEEP_PAGES = 10
SWEEP_SHARE = 0.1


def run(
    ctx: AppContext,
    *,
    budget_seconds: float | None = None,
    account_seconds: float | None = None,
    concurrency: int | None = None,
    now: datetime | None = None,
) -> RunSummary:
    """Verify the accounts, stalest first, with `concurrency` workers, within `budget_seconds`
    (default `HEALTH_CHECK_TIME_BUDGET_SECONDS`).

    An account is started while at least `SHORTEST_ACCOUNT_SECONDS` of the budget is left; its
    deadline is the smaller of `account_seconds` (default `VERIFY_TIMEOUT_SECONDS`) and the time
    left, and its report is recorded inside that deadline. Housekeeping gets what is left of the
    budget. Every outbound wait honours these deadlines, so a run ends within its budget plus
    one request timeout at most.

    Before an account is verified its renewal is looked after (`renewal.upkeep`): a rotation
    started inside the expiry warning window, automatic renewal's Graph writes, a replaced key
    retired. `now` is the clock those decisions, the schedule and housekeeping use (injected
    by tests)."""
    started = time.monotonic()
    settings = ctx.settings
    budget = float(
        settings.health_check_budget_seconds if budget_seconds is None else budget_seconds
    )
    per_account = float(
        settings.verify_timeout_seconds if account_seconds is None else account_seconds
    )
    # To the millisecond: an account this run verifies started after it, so it is not met again.
    due_by = now or datetime.now(UTC)
    _prepare_schedule(ctx, due_by, started, budget)
    job = _Run(
        ctx,
        now=now,
        due_by=due_by,
        stop_at=started + budget,
        shortest=min(SHORTEST_ACCOUNT_SECONDS, budget),
        per_account=per_account,
        workers=concurrency or settings.health_check_concurrency,
    )
    with ThreadPoolExecutor(max_workers=job.workers, thread_name_prefix="health") as pool:
        for _ in range(job.workers):
            pool.submit(job.worker)
    job.finish()
    summary = job.summary
    with deadline(max(job.stop_at - time.monotonic(), 0.0)):
        housekeeping.run(ctx, summary, now or utc_now(), stop_at=job.stop_at)
    summary.duration_ms = round((time.monotonic() - started) * 1000)
    log.info(
        "health_check summary %s",
        " ".join(f"{k}={v}" for k, v in summary.as_dict().items()),
        extra={"healthCheck": summary.as_dict()},
    )
    return summary


def _prepare_schedule(ctx: AppContext, now: datetime, started: float, budget: float) -> None:
    """Entries for an older release's accounts (at most half the run, until done), then the
    sweep that puts back accounts missing from the schedule: a pass begins once per interval
    (one instance claims it), and every run goes on with it a little."""
    try:
        with deadline(budget / 2):
            ctx.accounts.prepare_schedule(started + budget / 2)
        stop_at = time.monotonic() + budget * SWEEP_SHARE
        every = timedelta(hours=ctx.settings.health_check_interval_hours)
        with deadline(budget * SWEEP_SHARE):
            begin = ctx.accounts.claim_chore("schedule_sweep", now, every)
            ctx.accounts.sweep_schedule(stop_at, SWEEP_PAGES, restart=begin)
    except AppError as error:
        log.warning("schedule not prepared: %s", error.detail)


class _Run:
    """One run's workers: they take due accounts from the schedule a batch at a time, each
    leased to this run, verify them and end each lease once its report is recorded."""

    def __init__(
        self,
        ctx: AppContext,
        *,
        now: datetime | None,
        due_by: datetime,
        stop_at: float,
        shortest: float,
        per_account: float,
        workers: int,
    ) -> None:
        self.ctx, self.now, self.due_by, self.stop_at = ctx, now, due_by, stop_at
        self.shortest, self.per_account, self.workers = shortest, per_account, workers
        self.summary = RunSummary()
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease = timedelta(seconds=per_account + LEASE_MARGIN_SECONDS)
        self.taken: deque[Account] = deque()
        self.seen: set[str] = set()  # verified in this run (interval 0: due again)
        self.kept: list[Account] = []  # met again: leased (so not met again) until the run ends
        self.lock = threading.Lock()
        self.exhausted = False

    def next_account(self) -> tuple[Account, float] | None:
        with self.lock:
            while True:
                left = self.stop_at - time.monotonic()
                if left < self.shortest:
                    return None
                if self.taken or self.exhausted:
                    break
                self._take(left)
            if not self.taken:
                return None
            account = self.taken.popleft()  # never seen: `_take` keeps those out
            self.seen.add(account.id)
            self.summary.accounts += 1
            return account, min(self.per_account, left)

    def _take(self, left: float) -> None:
        """The next batch; `exhausted` once no unleased account is due (the store never answers
        an empty batch because another instance took the one it met: it looks further)."""
        try:
            with deadline(left):
                batch = self.ctx.accounts.take_due(
                    self.due_by, self.workers * BATCH_PER_WORKER, self.lease, self.holder
                )
        except AppError as error:
            log.warning("due accounts not read: %s", error.detail)
            batch = []
        self.exhausted = not batch
        self.kept += [a for a in batch if a.id in self.seen]
        self.taken.extend(a for a in batch if a.id not in self.seen)

    def worker(self) -> None:
        while (job := self.next_account()) is not None:
            account, seconds = job
            try:
                self._verify(account, seconds)
            except Exception as exc:  # one account never stops the others
                with self.lock:
                    self.summary.failures += 1
                detail = exc.detail if isinstance(exc, AppError) else type(exc).__name__
                log.warning("health check failed accountId=%s reason=%s", account.id, detail)
            finally:  # the lease ends with this run's work on the account: its holder ends it
                self._release([account])

    def _verify(self, account: Account, seconds: float) -> None:
        ctx = self.ctx
        with deadline(seconds):
            # The checks leave a share of the account's time for recording their report.
            with deadline(seconds * (1 - RECORD_SHARE)):
                account = _looked_after(ctx, account, self.now)
                # A cached token is reused: no signature, no key store call. A new one costs
                # one `sign` in the key's own store (Key Vault under vault-key).
                verification = run_checks(ctx, account, fresh_token=False)
            report = verification.report
            saved = record(ctx, account, report, switch_to=verification.switch_to)
        with self.lock:
            self.summary.checked += 1
            self.summary.by_status[report["status"]] += 1
            self.summary.changed += saved.status != account.status

    def finish(self) -> None:
        """Taken but not reached, and met again: released, so the next run starts with them
        (still the stalest)."""
        self.summary.not_reached = len(self.taken)
        self._release([*self.taken, *self.kept])

    def _release(self, accounts: list[Account]) -> None:
        if accounts:
            _release(self.ctx, accounts, self.holder, max(self.stop_at - time.monotonic(), 1.0))


def _looked_after(ctx: AppContext, account: Account, now: datetime | None) -> Account:
    """The account after its renewal upkeep; a renewal that cannot move on now (a store down)
    never keeps the account from being verified."""
    try:
        return renewal.upkeep(ctx, account, now)
    except AppError as error:
        log.warning("renewal upkeep failed accountId=%s reason=%s", account.id, error.detail)
        return account


def _release(ctx: AppContext, accounts: list[Account], holder: str, seconds: float) -> None:
    try:
        with deadline(seconds):
            ctx.accounts.release(accounts, holder)
    except AppError as error:
        log.warning("leases not released (they lapse by themselves): %s", error.detail)
