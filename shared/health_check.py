"""The timer's work: re-verify every linked account, stalest first, then tidy the key store.

Each account's report is recorded as soon as it is ready, so a run that dies midway loses nothing
already done; a run that nears its time budget stops taking new accounts and the next run starts
with those it did not reach (they are then the stalest). One account's failure never stops the
others. Tokens and warm MSAL application objects are reused, and a private key is read from the
key store at most once per run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from shared import housekeeping
from shared.app_context import AppContext
from shared.errors import AppError
from shared.outbound import deadline
from shared.records import Account
from shared.timefmt import utc_now
from shared.verify import record, run_checks

log = logging.getLogger("m365link.health_check")


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


class _KeyReader:
    """Private keys for one run: read from the store on first need, then forgotten with the run."""

    def __init__(self, ctx: AppContext) -> None:
        self._ctx = ctx
        self._keys: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def reader(self, key_id: str) -> Callable[[], bytes]:
        def read() -> bytes:
            with self._lock:
                if key_id not in self._keys:
                    self._keys[key_id] = self._ctx.keys.get(key_id)
                return self._keys[key_id]

        return read

    def forget(self) -> None:
        self._keys.clear()


def run(
    ctx: AppContext,
    *,
    budget_seconds: float | None = None,
    account_seconds: float = 90.0,
    concurrency: int | None = None,
) -> RunSummary:
    started = time.monotonic()
    summary = RunSummary()
    if budget_seconds is None:
        budget_seconds = float(ctx.settings.health_check_budget_seconds)
    workers = concurrency or ctx.settings.health_check_concurrency
    # Stop taking new accounts while one more could still finish inside the budget.
    stop_taking_at = started + max(budget_seconds - account_seconds, 0.0)
    queue: Iterator[Account] = iter(stalest_first(list(ctx.accounts.list_all_accounts())))
    lock = threading.Lock()
    keys = _KeyReader(ctx)

    def next_account() -> Account | None:
        with lock:
            if time.monotonic() >= stop_taking_at:
                return None
            account = next(queue, None)
            if account is not None:
                summary.accounts += 1
            return account

    def worker() -> None:
        while (account := next_account()) is not None:
            try:
                with deadline(account_seconds):
                    report = run_checks(
                        ctx, account, fresh_token=False, private_key=keys.reader(account.key_id)
                    )
                saved = record(ctx, account, report)
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
    keys.forget()
    summary.not_reached = sum(1 for _ in queue)
    housekeeping.run(ctx, summary, utc_now())
    summary.duration_ms = round((time.monotonic() - started) * 1000)
    log.info(
        "health_check summary %s",
        " ".join(f"{k}={v}" for k, v in summary.as_dict().items()),
        extra={"healthCheck": summary.as_dict()},
    )
    return summary
