"""The health_check timer over a fleet of accounts in the sandbox tenant."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import requests

from shared.adapters.keystore.base import KeyLabels
from shared.app.bootstrap import build_context
from shared.context import AppContext
from shared.core import certificates
from shared.linking import keys
from shared.support.timefmt import from_rfc3339, utc_now
from shared.timer import run as health_check
from tests.conftest import RunningApp
from tests.contract.test_key_store import StaticCredential
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
    tenant, application = str(uuid.uuid4()), str(uuid.uuid4())
    return keys.store_key(app.context, "local-dev", tenant, application, "Old", now=made).key_id


def past(*stamps: str | None) -> None:
    """Wait until the clock (whole seconds, as the records keep it) is past every stamp, so
    whatever a run writes next is strictly newer."""
    latest = max(from_rfc3339(s) for s in stamps if s)
    while utc_now() <= latest:
        time.sleep(0.05)


def settled(sandbox: Any) -> None:
    """Wait for requests an earlier test gave up on (the sandbox still sleeping out their
    injected latency) to end, then reset the request record and its in-flight maxima."""
    deadline = time.monotonic() + 15
    while sandbox.admin.requests()["inFlight"]["now"] and time.monotonic() < deadline:
        time.sleep(0.1)
    sandbox.admin.reset_requests()


def another_instance(app: RunningApp, **options: Any) -> AppContext:
    """The app as another worker instance sees it: same stores, nothing warm (no MSAL
    application object, token or tenant metadata cached)."""
    return build_context(app.context.settings, **options)


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
    app.context.keys.create(  # a private key whose record was never written
        orphan,
        KeyLabels("x", "t", "a", "", utc_now(), store=app.context.accounts.identity),
        key_size=2048,
        certify=lambda signer, public: certificates.certify(
            signer, public, "o", validity_days=1, now=utc_now()
        ),
    )
    two_hours_ago = time.time() - 7200
    os.utime(app.context.settings.local_state_dir / "keys" / f"{orphan}.pem", (two_hours_ago,) * 2)
    # The throttled tenant answers 429 to every token request during the run.
    sandbox.admin.add_fault("token", 429, path=throttled.tenant_id, retry_after=1)
    before = {c.account["id"]: c.current() for c in (healthy, revoked, unroled, throttled)}
    past(*(b["lastVerifiedAt"] for b in before.values()))

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
        assert from_rfc3339(after) > from_rfc3339(before[customer.account["id"]]["lastVerifiedAt"])
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
    assert counts.get("graph", 0) == len(fleet)  # one batch each: every Graph read in it
    assert summary.by_status["connected"] == len(fleet)


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
    assert 1 <= first.checked < 6
    assert len(reached) == first.checked
    assert second.checked == 6 and all(c.current()["lastVerifiedAt"] for c in fleet)
    assert all(c.current()["status"] == "connected" for c in fleet)


def test_an_exception_in_one_account_does_not_stop_the_others(
    app: RunningApp, sandbox: Any
) -> None:
    first, unlinked, last = sorted(
        (Customer(app, sandbox).link_all_the_way() for _ in range(3)),
        key=lambda c: c.account["id"],  # never verified: the timer takes them in id order
    )
    # The first account's tenant is slow, and while the run waits on it the customer unlinks
    # the second: recording its report then fails (the account is gone).
    sandbox.admin.add_fault("metadata", None, path=first.tenant_id, latency_ms=1500)
    fresh = another_instance(app)
    result: list[health_check.RunSummary] = []
    run = threading.Thread(target=lambda: result.append(health_check.run(fresh, concurrency=1)))
    try:
        run.start()
        # The run is inside the first account's slow metadata request (so it has taken the
        # first two accounts) before the customer unlinks the second: no guess at timing.
        waited_until = time.monotonic() + 20
        while sandbox.admin.requests()["inFlight"]["now"] == 0:
            assert time.monotonic() < waited_until, "the run never reached the first tenant"
            time.sleep(0.02)
        gone = app.http.delete(app.api(f"/accounts/{unlinked.account['id']}"))
        run.join(30)
    finally:
        sandbox.admin.clear_faults()
    assert gone.status_code == 204
    [summary] = result
    assert summary.accounts == 3 and summary.failures == 1 and summary.checked == 2
    assert first.current()["lastVerification"]["status"] == "connected"
    assert last.current()["lastVerification"]["status"] == "connected"  # after the failure


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


def test_never_more_requests_in_flight_than_health_check_concurrency(
    sandboxed_app: Callable[..., RunningApp], sandbox: Any
) -> None:
    app = sandboxed_app({"HEALTH_CHECK_CONCURRENCY": "3"})
    fleet = [Customer(app, sandbox).link_all_the_way() for _ in range(7)]
    fresh = another_instance(app)  # cold: metadata, token and Graph for every account
    sandbox.admin.set_latency(100)
    settled(sandbox)
    try:
        summary = health_check.run(fresh)
        in_flight = sandbox.admin.requests()["inFlight"]
    finally:
        sandbox.admin.set_latency(0)
    assert summary.checked == 7 and all(c.current()["status"] == "connected" for c in fleet)
    assert 2 <= in_flight["max"] <= 3  # the pool ran in parallel, never wider than the setting


def test_a_budget_of_two_seconds_verifies_accounts_and_ends_in_time(
    app: RunningApp, sandbox: Any
) -> None:
    fleet = [connected(app, sandbox) for _ in range(6)]
    before = {c.account["id"]: c.current()["lastVerifiedAt"] for c in fleet}
    past(*before.values())
    sandbox.admin.set_latency(1000)  # one Graph batch per warm account: 1 s each
    started = time.monotonic()
    try:
        summary = health_check.run(app.context, budget_seconds=2, concurrency=2)
    finally:
        sandbox.admin.set_latency(0)
    elapsed = time.monotonic() - started
    print(f"timer run, budget 2 s, 1000 ms latency: {elapsed:.2f} s, {summary.as_dict()}")
    assert elapsed < 2 + 1.0  # the budget, plus local bookkeeping; no request outlived it
    # Six accounts of 1 s each on two workers need 3 s: some wait for the next run.
    assert summary.by_status["connected"] >= 1 and summary.checked < len(fleet)
    verified = [c for c in fleet if c.current()["lastVerifiedAt"] != before[c.account["id"]]]
    assert len(verified) == summary.checked
    assert all(c.current()["status"] == "connected" for c in fleet)


def test_a_slow_key_vault_keeps_the_pool_parallel(
    sandboxed_app: Callable[..., RunningApp], sandbox: Any
) -> None:
    app = sandboxed_app(
        {"KEY_VAULT_URL": sandbox.keyvault_url}, vault_credential=StaticCredential()
    )
    fleet = [Customer(app, sandbox).link_all_the_way() for _ in range(4)]
    # Another instance has no warm application object: each account reads its key's public half
    # once and asks the vault for one signature (vault-key), both slow here.
    fresh = another_instance(app, vault_credential=StaticCredential())
    sandbox.admin.add_fault("keyvault", None, path="/keys/m365link-", latency_ms=1500)
    settled(sandbox)
    started = time.monotonic()
    try:
        summary = health_check.run(fresh, concurrency=4)
        in_flight = sandbox.admin.requests()["inFlight"]
    finally:
        sandbox.admin.clear_faults()
    elapsed = time.monotonic() - started
    assert summary.checked == 4 and summary.by_status["connected"] == 4
    assert all(c.current()["lastVerification"]["status"] == "connected" for c in fleet)
    assert in_flight["maxByTarget"]["keyvault"] >= 2  # key reads overlapped
    # One after the other, the four accounts' read + sign would take 12 s; in parallel about 3.
    assert elapsed < 2 * (1.5 + 1.5)


def test_back_to_back_runs_with_an_interval_of_zero_each_verify_every_account(
    app: RunningApp, sandbox: Any
) -> None:
    """An account verified early in a run is due again before the run ends (interval 0): the
    run must not keep it leased, or the next run skips it."""
    fleet = [Customer(app, sandbox).link_all_the_way() for _ in range(7)]
    runs = [health_check.run(app.context, concurrency=1) for _ in range(2)]
    assert [r.checked for r in runs] == [len(fleet), len(fleet)]
