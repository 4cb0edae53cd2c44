"""The timer's work: re-verify the accounts that are due, stalest first, then tidy the key store.

Due accounts come from the account store's schedule (`take_due`), a few at a time as workers
need them, so a run reads only due accounts and its memory does not grow with the fleet. Each
is leased to this run while it works on it, so runs of several instances at once verify each
due account once. Each account's report is recorded as soon as it is ready (which also moves it
on in the schedule and ends the lease), so a run that dies midway loses nothing already done; a
run that nears its time budget stops taking accounts and the next run starts with those it did
not reach (they are still the stalest). One account's failure never stops the others. Tokens
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

from shared import housekeeping, renewal
from shared.app_context import AppContext
from shared.errors import AppError
from shared.outbound import deadline
from shared.records import Account
from shared.timefmt import utc_now
from shared.verify import record, run_checks

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
    retired. `now` is the clock those decisions and housekeeping use (injected by tests)."""
    started = time.monotonic()
    summary = RunSummary()
    settings = ctx.settings
    budget = float(
        settings.health_check_budget_seconds if budget_seconds is None else budget_seconds
    )
    per_account = float(
        settings.verify_timeout_seconds if account_seconds is None else account_seconds
    )
    stop_at = started + budget
    shortest = min(SHORTEST_ACCOUNT_SECONDS, budget)
    workers = concurrency or settings.health_check_concurrency
    # To the millisecond: an account this run verifies started after it, so it is not met again.
    due_by = now or datetime.now(UTC)
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    lease = timedelta(seconds=per_account + LEASE_MARGIN_SECONDS)
    taken: deque[Account] = deque()
    seen: set[str] = set()  # verified in this run: with an interval of 0 they are due again
    lock = threading.Lock()
    exhausted = False
    try:
        with deadline(budget / 2):  # at most half the run, once per table (older releases)
            ctx.accounts.prepare_schedule(started + budget / 2)
    except AppError as error:
        log.warning("schedule not prepared: %s", error.detail)

    def next_account() -> tuple[Account, float] | None:
        nonlocal exhausted
        with lock:
            while True:
                left = stop_at - time.monotonic()
                if left < shortest:
                    return None
                if not taken and not exhausted:
                    try:
                        with deadline(left):
                            batch = ctx.accounts.take_due(
                                due_by, workers * BATCH_PER_WORKER, lease, holder
                            )
                    except AppError as error:
                        log.warning("due accounts not read: %s", error.detail)
                        batch = []
                    fresh = [a for a in batch if a.id not in seen]
                    again = [a for a in batch if a.id in seen]
                    if again:  # due again within this run (interval 0): free for the next run
                        _release(ctx, again, holder, left)
                    exhausted = not fresh
                    taken.extend(fresh)
                if not taken:
                    return None
                account = taken.popleft()  # never seen: `fresh` keeps those out
                seen.add(account.id)
                summary.accounts += 1
                return account, min(per_account, left)

    def worker() -> None:
        while (job := next_account()) is not None:
            account, seconds = job
            try:
                with deadline(seconds):
                    # The checks leave a share of the account's time for recording their report.
                    with deadline(seconds * (1 - RECORD_SHARE)):
                        account = _looked_after(ctx, account, now)
                        # A cached token is reused: no signature, no key store call. A new one
                        # costs one `sign` in the key's own store (Key Vault under vault-key).
                        verification = run_checks(ctx, account, fresh_token=False)
                    report = verification.report
                    saved = record(ctx, account, report, switch_to=verification.switch_to)
                with lock:
                    summary.checked += 1
                    summary.by_status[report["status"]] += 1
                    summary.changed += saved.status != account.status
            except Exception as exc:  # one account never stops the others
                with lock:
                    summary.failures += 1
                detail = exc.detail if isinstance(exc, AppError) else type(exc).__name__
                log.warning("health check failed accountId=%s reason=%s", account.id, detail)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="health") as pool:
        for _ in range(workers):
            pool.submit(worker)
    # Taken but not reached: released, so the next run starts with them (still the stalest).
    summary.not_reached = len(taken)
    if taken:
        _release(ctx, list(taken), holder, max(stop_at - time.monotonic(), 1.0))
    with deadline(max(stop_at - time.monotonic(), 0.0)):
        housekeeping.run(ctx, summary, now or utc_now(), stop_at=stop_at)
    summary.duration_ms = round((time.monotonic() - started) * 1000)
    log.info(
        "health_check summary %s",
        " ".join(f"{k}={v}" for k, v in summary.as_dict().items()),
        extra={"healthCheck": summary.as_dict()},
    )
    return summary


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
