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

import contextvars
import logging
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.adapters.accountstore.base import AccountStore, VersionConflict
from shared.context import AppContext
from shared.core.errors import AppError
from shared.core.model import Account
from shared.core.schedule import SchedulePolicy
from shared.renewal import renew as renewal
from shared.support.deadline import deadline
from shared.support.timefmt import utc_now
from shared.timer import housekeeping
from shared.timer.due_accounts import DueAccounts, record_backlog, run_clock
from shared.timer.housekeeping import HousekeepingCounts
from shared.verification.record import record
from shared.verification.verify import RECORD_SHARE, observe, run_checks

log = logging.getLogger("m365link.health_check")
# Less than this left of the budget could only record a timeout: the account waits for the next
# run, where it is among the stalest.
SHORTEST_ACCOUNT_SECONDS = 0.5
# A lease outlives the account's own deadline by this much, so it only lapses when the
# instance that holds it has died.
LEASE_MARGIN_SECONDS = 60
BATCH_PER_WORKER = 2  # due accounts taken from the schedule at a time, per worker
# The schedule's sweep (accounts missing from it put back): a pass begins once per interval, and
# each run goes on with it for at most these pages and this share of its budget.
SWEEP_PAGES = 10
SWEEP_SHARE = 0.1
# The issuer key's upkeep runs first (its rotation must not wait behind a large fleet), within
# this many seconds and at most half the budget: it usually reads one partition and stops.
ISSUER_SECONDS = 30.0


@dataclass(frozen=True)
class Verified:
    """One account's verification, as the run counts it."""

    status: str  # the report's
    changed: bool  # the account's status is not what it was before


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
    issuer_keys_published: int = 0
    issuer_keys_retired: int = 0
    duration_ms: int = 0

    def add_verified(self, verified: Verified) -> None:
        self.checked += 1
        self.by_status[verified.status] += 1
        self.changed += verified.changed

    def add_housekeeping(self, counts: HousekeepingCounts) -> None:
        self.keys_removed += counts.keys_removed
        self.deletions_finished += counts.deletions_finished
        self.orphans_removed += counts.orphans_removed

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
            "issuerKeysPublished": self.issuer_keys_published,
            "issuerKeysRetired": self.issuer_keys_retired,
            "durationMs": self.duration_ms,
        }


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
    workers = concurrency or settings.health_check_concurrency
    # To the millisecond: an account this run verifies started after it, so it is not met again.
    due_by = now or datetime.now(UTC)
    every = timedelta(hours=settings.health_check_interval_hours)
    _prepare_schedule(ctx.accounts, due_by, every, started, budget)
    stop_at = started + budget
    summary = RunSummary()
    _issuer_upkeep(ctx, summary, min(ISSUER_SECONDS, budget / 2))
    due = DueAccounts(
        ctx.accounts,
        due_by=due_by,
        batch=workers * BATCH_PER_WORKER,
        lease=timedelta(seconds=per_account + LEASE_MARGIN_SECONDS),
        stop_at=stop_at,
        shortest=min(SHORTEST_ACCOUNT_SECONDS, budget),
    )
    _verify_due(ctx, due, per_account, now, summary, workers)
    summary.not_reached = due.finish()
    _record_backlog(ctx, due, every, run_clock(due_by, time.monotonic() - started))
    with deadline(max(stop_at - time.monotonic(), 0.0)):
        summary.add_housekeeping(housekeeping.run(ctx, now or utc_now(), stop_at=stop_at))
    summary.duration_ms = round((time.monotonic() - started) * 1000)
    log.info(
        "health_check summary %s",
        " ".join(f"{k}={v}" for k, v in summary.as_dict().items()),
        extra={"healthCheck": summary.as_dict()},
    )
    return summary


def _verify_due(
    ctx: AppContext,
    due: DueAccounts,
    per_account: float,
    now: datetime | None,
    summary: RunSummary,
    workers: int,
) -> None:
    """`workers` threads verify the due accounts until none is left or the budget is spent."""
    counting = threading.Lock()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="health") as pool:
        for _ in range(workers):
            # Each worker runs in a copy of the run's context, so its spans join the run's trace.
            pool.submit(
                contextvars.copy_context().run, _work, ctx, due, per_account, now, summary, counting
            )


def _record_backlog(ctx: AppContext, due: DueAccounts, every: timedelta, at: datetime) -> None:
    """The due accounts this run did not reach, and how long the oldest has waited, under the
    interval and renewal window the schedule uses."""
    warning = timedelta(days=ctx.settings.cert_expiry_warning_days)
    record_backlog(due.not_reached(), SchedulePolicy(every, warning), at)


def _prepare_schedule(
    accounts: AccountStore, now: datetime, every: timedelta, started: float, budget: float
) -> None:
    """Entries for an older release's accounts (at most half the run, until done), then the
    sweep that puts back accounts missing from the schedule: a pass begins once per interval
    (one instance claims it), and every run goes on with it a little."""
    try:
        with deadline(budget / 2):
            accounts.prepare_schedule(started + budget / 2)
        stop_at = time.monotonic() + budget * SWEEP_SHARE
        with deadline(budget * SWEEP_SHARE):
            begin = accounts.claim_chore("schedule_sweep", now, every)
            accounts.sweep_schedule(stop_at, SWEEP_PAGES, restart=begin)
    except (AppError, VersionConflict) as error:
        log.warning("schedule not prepared: %s", error.detail)


def _issuer_upkeep(ctx: AppContext, summary: RunSummary, seconds: float) -> None:
    """One pass of the issuer key's lifecycle within `seconds`; a failure is logged, and the
    next run goes on from the records."""
    try:
        with deadline(seconds):
            done = ctx.issuer().upkeep(stop_at=time.monotonic() + seconds)
    except Exception as error:
        detail = error.detail if isinstance(error, AppError) else type(error).__name__
        log.warning("issuer key upkeep failed: %s", detail)
        return
    summary.issuer_keys_published += done.published
    summary.issuer_keys_retired += done.retired


def _work(
    ctx: AppContext,
    due: DueAccounts,
    per_account: float,
    now: datetime | None,
    summary: RunSummary,
    counting: threading.Lock,
) -> None:
    """One worker: verifies due accounts until none is left or the run's time is up, counting
    each in `summary` (under `counting`); one account's failure never stops the others."""
    while (taken := due.next()) is not None:
        account, left = taken
        with counting:
            summary.accounts += 1
        try:
            verified = verify_one(ctx, account, min(per_account, left), now)
        except Exception as exc:
            with counting:
                summary.failures += 1
            detail = (
                exc.detail if isinstance(exc, AppError | VersionConflict) else type(exc).__name__
            )
            log.warning("health check failed accountId=%s reason=%s", account.id, detail)
        else:
            with counting:
                summary.add_verified(verified)
        finally:  # the lease ends with this run's work on the account: its holder ends it
            due.release([account])


def verify_one(
    ctx: AppContext, account: Account, seconds: float, now: datetime | None = None
) -> Verified:
    """One due account within `seconds`: its renewal looked after, its checks run and their
    report recorded (which moves it on in the schedule). Raises what the checks or the record
    raised."""
    started = time.perf_counter()
    with deadline(seconds):
        # The checks leave a share of the account's time for recording their report.
        with deadline(seconds * (1 - RECORD_SHARE)):
            account = _looked_after(ctx, account, now)
            # A cached token is reused: no signature, no key store call. A new one costs
            # one `sign` in the key's own store (Key Vault under vault-key).
            verification = run_checks(ctx, account, fresh_token=False)
        recorded = record(ctx, account, verification.report, switch_to=verification.switch_to)
    observe(recorded.report, trigger="timer", started=started)
    return Verified(recorded.report.status, recorded.account.status != account.status)


def _looked_after(ctx: AppContext, account: Account, now: datetime | None) -> Account:
    """The account after its renewal upkeep; a renewal that cannot move on now (a store down)
    never keeps the account from being verified."""
    try:
        return renewal.upkeep(ctx, account, now)
    except (AppError, VersionConflict) as error:
        log.warning("renewal upkeep failed accountId=%s reason=%s", account.id, error.detail)
        return account
