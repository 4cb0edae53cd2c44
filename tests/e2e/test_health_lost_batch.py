"""A timer run that loses a whole batch to another instance keeps taking accounts while time is
left (issue 18, item 11): it used to take the empty batch for "nothing due" and stop.

Two runs on one Table Storage account store, forced into the interleaving by hooks: run A
reads its first batch from the schedule; before it leases any of it, run B takes that very
batch. A must go on with the rest of the due accounts; B verifies its batch; each account is
verified once. (SQLite reads and leases a batch in one transaction: a batch cannot be lost
there, so this is a Table Storage test.)
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from shared.adapters.accountstore.table.store import TableAccountStore
from shared.app.bootstrap import build_context
from shared.context import AppContext
from shared.core.model import Account
from shared.timer import run as health_check
from tests.conftest import RunningApp
from tests.e2e.customer import Customer
from tests.e2e.test_health_schedule import token_requests_by_tenant
from tests.e2e.test_rotation import table_settings
from tests.e2e.test_rotation_race import settings_of

WAIT = 60  # seconds, at most, for the other run to reach its step


class LosesItsFirstBatch(TableAccountStore):
    """Run A's store: it lets B take the batch it has just read before it leases any of it."""

    def __init__(self, base: TableAccountStore, met: threading.Event, taken: threading.Event):
        super().__init__(base._service, base._table_name, base.policy)
        self.met, self.taken = met, taken

    def _lease(self, row: Any, until: int, holder: str) -> bool:
        if not self.met.is_set():
            self.met.set()
            assert self.taken.wait(WAIT)
        return super()._lease(row, until, holder)


class TakesThatBatch(TableAccountStore):
    """Run B's store: its first take waits for A to have read its batch; its next ones wait
    for A's run to be over, so B's part is exactly the batch it took from A."""

    def __init__(self, base: TableAccountStore, events: tuple[threading.Event, ...]) -> None:
        super().__init__(base._service, base._table_name, base.policy)
        self.met, self.taken, self.a_done = events
        self.batches: list[list[str]] = []

    def take_due(
        self, due_by: datetime, limit: int, lease: timedelta, holder: str
    ) -> list[Account]:
        assert (self.a_done if self.batches else self.met).wait(WAIT)
        batch = super().take_due(due_by, limit, lease, holder)
        self.batches.append([a.id for a in batch])
        self.taken.set()
        return batch


def with_store(
    ctx: AppContext, make: Callable[[TableAccountStore], TableAccountStore]
) -> AppContext:
    assert isinstance(ctx.accounts, TableAccountStore)
    return replace(ctx, accounts=make(ctx.accounts))


def test_a_run_that_lost_a_batch_to_another_instance_keeps_taking_accounts(
    sandboxed_app: Callable[..., RunningApp], sandbox: Any, azurite: Any, tmp_path: Any
) -> None:
    app = sandboxed_app(settings_of(sandbox, str(tmp_path / "state"), table_settings(azurite)))
    fleet = [Customer(app, sandbox).link_all_the_way() for _ in range(8)]  # never verified: due
    sandbox.admin.reset_requests()
    met, taken, a_done = threading.Event(), threading.Event(), threading.Event()
    run_a = with_store(
        build_context(app.context.settings), lambda s: LosesItsFirstBatch(s, met, taken)
    )
    b_store: list[TakesThatBatch] = []

    def make_b(store: TableAccountStore) -> TableAccountStore:
        b_store.append(TakesThatBatch(store, (met, taken, a_done)))
        return b_store[0]

    run_b = with_store(build_context(app.context.settings), make_b)
    summaries: dict[str, health_check.RunSummary] = {}
    other = threading.Thread(
        target=lambda: summaries.update(b=health_check.run(run_b, concurrency=1))
    )
    other.start()
    try:
        summaries["a"] = health_check.run(run_a, concurrency=1)  # batches of 2
    finally:
        a_done.set()
        other.join(timeout=120)
    lost = b_store[0].batches[0]
    assert len(lost) == 2  # A's first batch, taken by B before A could lease it
    assert summaries["a"].checked == len(fleet) - 2  # A went on with every other due account
    assert summaries["b"].checked == 2
    assert token_requests_by_tenant(sandbox) == Counter({c.tenant_id: 1 for c in fleet})
    assert all(c.current()["lastVerifiedAt"] is not None for c in fleet)
