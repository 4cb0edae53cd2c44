"""The health_check timer over a fleet of accounts in the sandbox tenant."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import requests

from shared import certificates, health_check, keys
from shared.keystore.base import KeyLabels
from shared.timefmt import utc_now
from tests.conftest import RunningApp
from tests.e2e.customer import Customer, check


@pytest.fixture
def app(sandboxed_app: Callable[..., RunningApp]) -> RunningApp:
    return sandboxed_app()


def connected(app: RunningApp, sandbox: Any, **register: Any) -> Customer:
    customer = Customer(app, sandbox).link_all_the_way(**register)
    assert customer.verify()["status"] == "connected"
    return customer


def aged_key(app: RunningApp, *, days: int) -> str:
    """A key made `days` ago and never linked, stored as POST /api/keys stores one."""
    made = utc_now() - timedelta(days=days)
    pair = certificates.generate("Old", validity_days=365, key_size=2048, now=made)
    tenant, application = str(uuid.uuid4()), str(uuid.uuid4())
    return keys.store_key(app.context, "local-dev", tenant, application, "Old", pair, made).key_id


def test_one_run_leaves_each_account_with_the_right_status(app: RunningApp, sandbox: Any) -> None:
    healthy = connected(app, sandbox)
    # Tokens of these tenants are too short-lived to reuse, as a token from a run six hours
    # ago would be: the run sees what changed in the tenant since.
    revoked = connected(app, sandbox, token_lifetime=120)
    sandbox.admin.set_permissions(revoked.tenant_id, revoked.application_id, [])
    unroled = connected(app, sandbox, token_lifetime=120)
    sandbox.admin.set_directory_roles(unroled.tenant_id, unroled.application_id, [])
    throttled = connected(app, sandbox, token_lifetime=120)
    expiring = Customer(app, sandbox).register()
    expiring.generate_key(validityDays=10)
    expiring.upload_certificate()
    expiring.connect()
    never_verified = Customer(app, sandbox).link_all_the_way()
    stale_key = aged_key(app, days=8)
    young_key = aged_key(app, days=2)
    orphan = str(uuid.uuid4())
    orphan_pem = certificates.generate("o", validity_days=1, key_size=2048, now=utc_now())
    app.context.keys.put(
        orphan, orphan_pem.private_key_pem, KeyLabels("x", "t", "a", "x", utc_now())
    )
    two_hours_ago = time.time() - 7200
    os.utime(app.context.settings.local_state_dir / "keys" / f"{orphan}.pem", (two_hours_ago,) * 2)
    # The throttled tenant answers 429 to every token request during the run.
    sandbox.admin.add_fault("token", 429, path=throttled.tenant_id, retry_after=1)
    before = {c.account["id"]: c.current() for c in (healthy, revoked, unroled, throttled)}

    summary = health_check.run(app.context, concurrency=4)

    sandbox.admin.clear_faults()
    assert healthy.current()["status"] == "connected"
    assert revoked.current()["status"] == "action_required"
    assert check(revoked.current()["lastVerification"], "admin_consent")["status"] == "fail"
    assert unroled.current()["status"] == "action_required"
    assert check(unroled.current()["lastVerification"], "directory_role")["status"] == "fail"
    throttled_now = throttled.current()
    assert throttled_now["status"] == "connected"  # a transient failure never flips it
    assert throttled_now["lastVerification"]["status"] == "error"
    assert check(throttled_now["lastVerification"], "application")["retryable"] is True
    assert expiring.current()["status"] == "connected"
    assert check(expiring.current()["lastVerification"], "certificate_expiry")["status"] == "warn"
    assert never_verified.current()["status"] == "connected"
    for customer in (healthy, revoked, unroled, throttled):
        after = customer.current()["lastVerifiedAt"]
        assert after is not None and after >= before[customer.account["id"]]["lastVerifiedAt"]
    # Housekeeping: an unlinked key older than 7 days and an orphan secret are gone.
    assert app.context.accounts.get_key("local-dev", stale_key) is None
    stored = {k.key_id for k in app.context.keys.list()}
    assert stale_key not in stored and orphan not in stored
    assert app.context.accounts.get_key("local-dev", young_key) is not None and young_key in stored
    assert summary.checked == 6 and summary.failures == 0 and summary.not_reached == 0
    assert summary.changed == 4  # revoked, unroled; expiring and never_verified left pending
    assert summary.keys_removed == 1 and summary.orphans_removed == 1


def test_graph_down_for_everyone_flips_no_account(app: RunningApp, sandbox: Any) -> None:
    fleet = [connected(app, sandbox) for _ in range(3)]
    sandbox.admin.add_fault("graph", 503)
    try:
        summary = health_check.run(app.context)
    finally:
        sandbox.admin.clear_faults()
    assert summary.by_status["error"] == 3 and summary.changed == 0
    for customer in fleet:
        account = customer.current()
        assert account["status"] == "connected"
        assert account["lastVerification"]["status"] == "error"


def test_health_check_reuses_tokens_and_keys(app: RunningApp, sandbox: Any) -> None:
    fleet = [connected(app, sandbox) for _ in range(3)]
    health_check.run(app.context)  # warms the token cache
    sandbox.admin.reset_requests()
    summary = health_check.run(app.context)
    counts = sandbox.admin.requests()["counts"]
    assert summary.checked == 3
    assert counts.get("token", 0) == 0 and counts.get("metadata", 0) == 0
    assert counts.get("graph", 0) == 2 * len(fleet)  # organization + access reviews each


def test_a_run_stopped_at_its_deadline_resumes_with_the_rest(app: RunningApp, sandbox: Any) -> None:
    fleet = [Customer(app, sandbox).link_all_the_way() for _ in range(6)]
    sandbox.admin.set_latency(150)
    try:
        first = health_check.run(
            app.context, budget_seconds=1.2, account_seconds=0.6, concurrency=1
        )
        reached = {c.account["id"] for c in fleet if c.current()["lastVerifiedAt"]}
        second = health_check.run(app.context, budget_seconds=60, account_seconds=1, concurrency=2)
    finally:
        sandbox.admin.set_latency(0)
    assert 1 <= first.checked < 6 and first.not_reached == 6 - first.checked
    assert len(reached) == first.checked
    assert second.checked == 6 and all(c.current()["lastVerifiedAt"] for c in fleet)
    assert all(c.current()["status"] == "connected" for c in fleet)


def test_an_exception_in_one_account_does_not_stop_the_others(
    app: RunningApp, sandbox: Any
) -> None:
    good = connected(app, sandbox)
    broken = connected(app, sandbox)
    # The private key of one account vanished from the key store (an operator deleted it).
    app.context.tenant_client()._apps.clear()
    app.context.keys.delete(broken.key["keyId"])
    summary = health_check.run(app.context)
    assert summary.failures == 1 and summary.checked == 1
    assert good.current()["lastVerification"]["status"] == "connected"


def test_the_local_host_runs_the_timer_on_request(app: RunningApp, sandbox: Any) -> None:
    customer = Customer(app, sandbox).link_all_the_way()
    response = requests.post(
        f"{app.url}/admin/functions/health_check", json={"input": ""}, timeout=10
    )
    assert response.status_code == 202
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and customer.current()["status"] == "pending":
        time.sleep(0.1)
    assert customer.current()["status"] == "connected"
    assert requests.post(f"{app.url}/admin/functions/nope", timeout=10).status_code == 404


def test_the_local_host_runs_the_timer_on_its_schedule(
    app: RunningApp, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer = Customer(app, sandbox).link_all_the_way()
    monkeypatch.setenv("HEALTH_CHECK_SCHEDULE", "*/2 * * * * *")  # every two seconds
    app.host.start_timers()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and customer.current()["status"] == "pending":
        time.sleep(0.2)
    assert customer.current()["status"] == "connected"


def test_each_account_has_its_own_deadline(app: RunningApp, sandbox: Any) -> None:
    slow = connected(app, sandbox, token_lifetime=120)
    quick = connected(app, sandbox)
    sandbox.admin.add_fault("token", None, path=slow.tenant_id, latency_ms=5000)
    started = time.monotonic()
    try:
        summary = health_check.run(app.context, account_seconds=1.0, concurrency=2)
    finally:
        sandbox.admin.clear_faults()
    assert time.monotonic() - started < 4.5  # the slow tenant did not hold the run for 5 s
    assert summary.checked == 2
    assert slow.current()["lastVerification"]["status"] == "error"
    assert slow.current()["status"] == "connected"
    assert quick.current()["lastVerification"]["status"] == "connected"
