"""The timer's work: re-verify every linked account, stalest first, then tidy the key store.

Each account's report is recorded as soon as it is ready, so a run that dies midway loses nothing
already done; a run that nears its time budget stops taking new accounts and the next run starts
with those it did not reach (they are then the stalest). One account's failure never stops the
others. Tokens and warm MSAL application objects are reused, and a private key is read from the
key store at most once per run (only when the account has no warm application object).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
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


def stalest_first(accounts: list[Account]) -> list[Account]:
    never = [a for a in accounts if a.last_verified_at is None]
    seen = [a for a in accounts if a.last_verified_at is not None]
    return sorted(never, key=lambda a: a.id) + sorted(
        seen, key=lambda a: (a.last_verified_at, a.id)
    )


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
    queue: Iterator[Account] = iter(stalest_first(list(ctx.accounts.list_all_accounts())))
    lock = threading.Lock()

    def next_account() -> tuple[Account, float] | None:
        with lock:
            left = stop_at - time.monotonic()
            if left < shortest:
                return None
            account = next(queue, None)
            if account is None:
                return None
            summary.accounts += 1
            return account, min(per_account, left)

    def worker() -> None:
        while (taken := next_account()) is not None:
            account, seconds = taken
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
    summary.not_reached = sum(1 for _ in queue)
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
