"""The due-based health check against the sandbox: only due accounts are verified, and two timer
runs in two processes on one store verify each due account once. SQLite and Table Storage."""

from __future__ import annotations

import multiprocessing
import os
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from shared import health_check
from shared.app_context import build_context
from shared.settings import load_settings
from shared.timefmt import utc_now
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


def test_two_timer_processes_verify_each_due_account_once(
    app: RunningApp, sandbox: Any, env: dict[str, str]
) -> None:
    fleet = [Customer(app, sandbox).link_all_the_way() for _ in range(12)]
    sandbox.admin.set_latency(50)  # so the two runs overlap
    sandbox.admin.reset_requests()
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    runs = [
        context.Process(target=_timer_in_process, args=(env, sandbox.ca_bundle_path, barrier))
        for _ in range(2)
    ]
    try:
        for run in runs:
            run.start()
        for run in runs:
            run.join(timeout=180)
            assert run.exitcode == 0
    finally:
        sandbox.admin.set_latency(0)
    verifications = token_requests_by_tenant(sandbox)
    assert verifications == Counter({c.tenant_id: 1 for c in fleet})
    assert all(c.current()["status"] == "connected" for c in fleet)


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
