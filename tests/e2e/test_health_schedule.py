"""The due-based health check against the sandbox: only due accounts are verified, "due" follows
the interval in force when the timer runs, and two timer runs in two processes on one store
verify each due account once while customers change the accounts. SQLite and Table Storage."""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from shared.app.bootstrap import build_context
from shared.core.settings import load_settings
from shared.support.timefmt import utc_now
from shared.timer import run as health_check
from tests.conftest import RunningApp
from tests.e2e.customer import Customer
from tests.e2e.test_rotation import table_settings
from tests.e2e.test_rotation_race import settings_of


@pytest.fixture(params=["sqlite", "table"])
def env(request: pytest.FixtureRequest, sandbox: Any, tmp_path: Any) -> dict[str, str]:
    backend = (
        {} if request.param == "sqlite" else table_settings(request.getfixturevalue("azurite"))
    )
    return {**settings_of(sandbox, str(tmp_path / "state"), backend),
            "HEALTH_CHECK_INTERVAL_HOURS": "6"}  # fmt: skip


@pytest.fixture
def app(sandboxed_app: Callable[..., RunningApp], env: dict[str, str]) -> RunningApp:
    return sandboxed_app(env)


def token_requests_by_tenant(sandbox: Any) -> Counter[str]:
    """Token requests per tenant in the sandbox's record: a cold instance makes one per
    verification."""
    return Counter(
        e["path"].strip("/").split("/")[0]
        for e in sandbox.admin.requests()["value"]
        if e["target"] == "token"
    )


def test_only_due_accounts_are_verified(app: RunningApp, sandbox: Any) -> None:
    fresh = [Customer(app, sandbox).link_all_the_way() for _ in range(3)]
    for customer in fresh:
        customer.verify()  # verified now: due in 6 hours
    never = Customer(app, sandbox).link_all_the_way()
    sandbox.admin.reset_requests()
    summary = health_check.run(build_context(app.context.settings))
    assert summary.checked == 1
    assert set(token_requests_by_tenant(sandbox)) == {never.tenant_id}
    assert never.current()["lastVerifiedAt"] is not None
    # Six hours on, every account is due again.
    sandbox.admin.reset_requests()
    later = health_check.run(
        build_context(app.context.settings), now=utc_now() + timedelta(hours=7)
    )
    assert later.checked == 4
    assert set(token_requests_by_tenant(sandbox)) == {c.tenant_id for c in [*fresh, never]}


def _timer_in_process(env: dict[str, str], ca_bundle: str, barrier: Any) -> None:
    os.environ["REQUESTS_CA_BUNDLE"] = ca_bundle
    ctx = build_context(load_settings(env))
    barrier.wait(timeout=60)
    summary = health_check.run(ctx, concurrency=3)
    if summary.failures:
        raise SystemExit(f"{summary.failures} failures")


def test_two_timer_processes_verify_each_due_account_once_while_customers_change_them(
    app: RunningApp, sandbox: Any, env: dict[str, str]
) -> None:
    """Customers rename their accounts all through both runs: a write never ends the lease a
    run holds (it used to, and the other run verified the account a second time)."""
    fleet = [Customer(app, sandbox).link_all_the_way() for _ in range(12)]
    sandbox.admin.set_latency(50)  # so the two runs overlap
    sandbox.admin.reset_requests()
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(3)
    runs = [
        context.Process(target=_timer_in_process, args=(env, sandbox.ca_bundle_path, barrier))
        for _ in range(2)
    ]
    done = threading.Event()
    writes = Counter[int]()

    def customers_writing() -> None:
        barrier.wait(timeout=60)
        n = 0
        while not done.is_set():
            customer = fleet[n % len(fleet)]
            body = {"displayName": f"Renamed {n}"}
            url = app.api(f"/accounts/{customer.account['id']}")
            writes[app.http.patch(url, json=body).status_code] += 1
            n += 1

    writer = threading.Thread(target=customers_writing)
    try:
        writer.start()
        for run in runs:
            run.start()
        for run in runs:
            run.join(timeout=180)
            assert run.exitcode == 0
    finally:
        done.set()
        writer.join(timeout=60)
        sandbox.admin.set_latency(0)
    print(f"PATCHes during the two runs: {dict(writes)}")
    assert writes[200] >= len(fleet), writes  # every account changed during the runs
    assert set(writes) <= {200, 503}, writes  # 503: a PATCH that lost a race with a record
    verifications = token_requests_by_tenant(sandbox)
    assert verifications == Counter({c.tenant_id: 1 for c in fleet})
    assert all(c.current()["status"] == "connected" for c in fleet)


def test_due_follows_the_interval_in_force_when_the_timer_runs(
    app: RunningApp, sandbox: Any, env: dict[str, str]
) -> None:
    """An operator changes HEALTH_CHECK_INTERVAL_HOURS between runs (6 -> 1 -> 0 -> 24): each
    run judges "due" with its own, whatever the interval was when the accounts were verified."""
    fleet = [Customer(app, sandbox).link_all_the_way() for _ in range(3)]
    for customer in fleet:
        customer.verify()  # under 6 hours

    def run_with(hours: int, later: timedelta | None) -> int:
        settings = load_settings({**env, "HEALTH_CHECK_INTERVAL_HOURS": str(hours)})
        when = utc_now() + later if later is not None else None
        return health_check.run(build_context(settings), now=when).checked

    two_hours = timedelta(hours=2)
    assert run_with(6, two_hours) == 0  # verified 2 hours ago: not due under 6
    assert run_with(1, two_hours) == 3  # shortened: due at once, not 6 hours after
    assert run_with(0, None) == 3  # 0: every account verified before the run
    assert run_with(24, timedelta(hours=7)) == 0  # lengthened: verified within 24 hours
    assert run_with(24, timedelta(hours=25)) == 3


def test_table_an_account_missing_from_the_schedule_is_verified_within_an_interval(
    sandboxed_app: Callable[..., RunningApp], sandbox: Any, azurite: Any, tmp_path: Any
) -> None:
    """Whatever took an account's rows out of the schedule, the sweep (a pass begun once per
    interval, by one instance) puts it back, so it is verified again within an interval."""
    env = {**settings_of(sandbox, str(tmp_path / "state"), table_settings(azurite)),
           "HEALTH_CHECK_INTERVAL_HOURS": "6"}  # fmt: skip
    app = sandboxed_app(env)
    kept, lost = (Customer(app, sandbox).link_all_the_way() for _ in range(2))
    store = app.context.accounts

    def rows_of_lost() -> list[str]:
        rows = store._query("PartitionKey eq @pk", pk="%schedule")  # type: ignore[attr-defined]
        return [r["RowKey"] for r in rows if lost.account["id"] in r["RowKey"]]

    def forget() -> None:
        for key in rows_of_lost():
            store._delete("%schedule", key)  # type: ignore[attr-defined]

    forget()
    assert health_check.run(build_context(app.context.settings)).checked == 2  # swept at once
    assert lost.current()["lastVerifiedAt"] is not None
    forget()
    soon = utc_now() + timedelta(hours=5, minutes=59)  # the pass of this interval is over
    assert health_check.run(build_context(app.context.settings), now=soon).checked == 0
    assert rows_of_lost() == []
    later = utc_now() + timedelta(hours=6, minutes=1)  # the next pass: both due, both taken
    assert health_check.run(build_context(app.context.settings), now=later).checked == 2
    assert rows_of_lost() and kept.current()["lastVerifiedAt"] is not None


def test_the_key_store_sweep_runs_once_per_interval(app: RunningApp) -> None:
    from tests.e2e.test_health_check import aged_key

    first = aged_key(app, days=8)  # never linked, past its retention
    assert health_check.run(app.context).keys_removed == 1
    second = aged_key(app, days=8)
    # The timer runs every 10 minutes; the sweep of every key only once per interval.
    assert health_check.run(app.context).keys_removed == 0
    assert app.http.get(app.api(f"/keys/{second}")).status_code == 200
    later = health_check.run(app.context, now=utc_now() + timedelta(hours=6, minutes=1))
    assert later.keys_removed == 1
    for key_id in (first, second):
        assert app.http.get(app.api(f"/keys/{key_id}")).status_code == 404
