"""The domain metrics an operator watches (API.md, "Telemetry"; names in
shared/support/telemetry.py), read from the session's in-memory SDK as they move around what a
customer or the timer does against the sandbox tenant."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.support import telemetry as t
from shared.support.timefmt import from_rfc3339
from shared.timer import run as health_check
from tests.conftest import RunningApp
from tests.contract.test_key_store import StaticCredential
from tests.e2e.customer import Customer
from tests.e2e.test_rotation import upload
from tests.telemetry.collect import Points, Telemetry, moved

GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
TENANT, APPLICATION = "72f988bf-86f1-41af-91ab-2d7cd011db47", "11111111-2222-3333-4444-555555555555"
ALL_CHECKS = 12  # API.md, "Verification": every report has the twelve checks


def attrs(**pairs: str) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(pairs.items()))


def gauge(points: Points, name: str) -> float:
    values = [value for (metric, _), value in points.items() if metric == name]
    assert len(values) == 1, f"{name}: {values}"
    return values[0]


@pytest.fixture
def app(sandboxed_app: Callable[..., RunningApp]) -> RunningApp:
    return sandboxed_app()


def test_a_customer_verification_moves_its_metrics(
    app: RunningApp, sandbox: Any, telemetry: Telemetry
) -> None:
    customer = Customer(app, sandbox).link_all_the_way()
    sandbox.admin.set_directory_roles(customer.tenant_id, customer.application_id, [])
    before = telemetry.metrics()
    report = customer.verify()
    after = telemetry.metrics()

    assert report["status"] == "action_required"
    status = {t.REPORT_STATUS: "action_required"}
    assert moved(before, after, t.VERIFICATIONS) == {attrs(**status, **{t.TRIGGER: "customer"}): 1}
    assert moved(before, after, t.VERIFICATION_DURATION) == {attrs(**status): 1}
    checks = moved(before, after, t.CHECKS)
    assert len(checks) == ALL_CHECKS and set(checks.values()) == {1}
    expected = {
        attrs(
            **{
                t.CHECK_ID: c["id"],
                t.CHECK_STATUS: c["status"],
                t.CHECK_CODE: c["code"] or "",
            }
        )
        for c in report["checks"]
    }
    assert set(checks) == expected
    # The invocation's span names the report's status and the checks that did not pass.
    marked = [s for s in telemetry.spans() if t.REPORT_STATUS in (s.attributes or {})]
    assert marked, "no span carries the report status"
    span_attributes = marked[-1].attributes or {}
    assert span_attributes[t.REPORT_STATUS] == "action_required"
    failing = [c["id"] for c in report["checks"] if c["status"] in ("fail", "error")]
    assert failing and list(span_attributes[t.FAILING_CHECKS]) == failing  # type: ignore[arg-type]
    # A fresh token each time the customer verifies: one request Entra answered.
    issued = attrs(**{t.SERVICE: "entra", t.OUTCOME: "issued"})
    assert moved(before, after, t.TOKEN_REQUESTS) == {issued: 1}


def test_a_timer_run_reuses_tokens_and_records_no_token_request(
    app: RunningApp, sandbox: Any, telemetry: Telemetry
) -> None:
    customer = Customer(app, sandbox).link_all_the_way()
    customer.verify()
    health_check.run(app.context, budget_seconds=30)  # warms the token cache
    before = telemetry.metrics()
    health_check.run(app.context, budget_seconds=30)
    after = telemetry.metrics()
    assert moved(before, after, t.TOKEN_REQUESTS) == {}  # a cached token is no request
    runs = moved(before, after, t.VERIFICATIONS)
    assert runs[attrs(**{t.REPORT_STATUS: "connected", t.TRIGGER: "timer"})] >= 1


def test_a_timer_run_records_its_backlog_and_lag(
    app: RunningApp, sandbox: Any, telemetry: Telemetry
) -> None:
    fleet = [Customer(app, sandbox).link_all_the_way() for _ in range(4)]
    for customer in fleet:
        customer.verify()  # warm: one Graph batch each from now on
    before = {c.account["id"]: c.current()["lastVerification"]["startedAt"] for c in fleet}
    sandbox.admin.set_latency(1000)
    try:
        # One worker takes two due accounts, and its first one uses up the 1.5 s budget.
        summary = health_check.run(
            app.context, budget_seconds=1.5, account_seconds=1.4, concurrency=1
        )
    finally:
        sandbox.admin.set_latency(0)
    ended = datetime.now(UTC)
    after = telemetry.metrics()
    assert summary.not_reached >= 1
    assert gauge(after, t.TIMER_BACKLOG) == summary.not_reached
    # Every account is due at every run here (interval 0) and the run takes the stalest first:
    # the oldest it did not reach has waited since its last verification started.
    unreached = [
        started
        for c in fleet
        if (started := before[c.account["id"]]) == c.current()["lastVerification"]["startedAt"]
    ]
    stalest = min(from_rfc3339(s) for s in unreached)
    lag = gauge(after, t.TIMER_LAG)
    assert abs(lag - (ended - stalest).total_seconds()) < 1.5

    health_check.run(app.context, budget_seconds=60, concurrency=2)  # reaches every account
    caught_up = telemetry.metrics()
    assert gauge(caught_up, t.TIMER_BACKLOG) == 0 and gauge(caught_up, t.TIMER_LAG) == 0


def test_rotations_move_as_they_start_complete_and_cancel(
    app: RunningApp, sandbox: Any, telemetry: Telemetry
) -> None:
    customer = Customer(app, sandbox).link_all_the_way()
    path = app.api(f"/accounts/{customer.account['id']}/rotation")
    readings = [telemetry.metrics()]
    started = app.http.post(path, json={})
    assert started.status_code == 201, started.text
    readings.append(telemetry.metrics())
    upload(customer, started.json()["key"]["keyId"])
    assert customer.verify()["status"] == "connected"  # Entra accepts it: the switch
    assert customer.current()["rotation"]["status"] == "completed"
    readings.append(telemetry.metrics())
    assert app.http.post(path, json={}).status_code == 201
    assert app.http.delete(path).status_code == 204
    readings.append(telemetry.metrics())

    def rotation(status: str) -> tuple[tuple[str, Any], ...]:
        return attrs(**{t.ROTATION_STATUS: status, t.ROTATION_KIND: "certificate"})

    assert moved(readings[0], readings[1], t.ROTATIONS) == {rotation("started"): 1}
    assert moved(readings[1], readings[2], t.ROTATIONS) == {rotation("completed"): 1}
    assert moved(readings[2], readings[3], t.ROTATIONS) == {
        rotation("started"): 1,
        rotation("cancelled"): 1,
    }


def test_the_issuer_key_age_is_recorded_by_the_timer(app: RunningApp, telemetry: Telemetry) -> None:
    body = {"kind": "federated", "tenantId": TENANT, "applicationId": APPLICATION,
            "displayName": "Contoso"}  # fmt: skip
    made = app.http.post(app.api("/keys"), json=body)  # the issuer's first key signs at once
    assert made.status_code == 201, made.text
    signs_from = max(k.use_from for k in app.context.accounts.issuer_keys() if k.use_from)
    health_check.run(app.context, budget_seconds=30)
    ended = datetime.now(UTC)
    age = gauge(telemetry.metrics(), t.ISSUER_KEY_AGE)
    assert 0 <= age <= (ended - signs_from).total_seconds() + 0.5


def test_a_key_vault_signature_records_its_duration(
    sandboxed_app: Callable[..., RunningApp], sandbox: Any, telemetry: Telemetry
) -> None:
    app = sandboxed_app(
        {"KEY_VAULT_URL": sandbox.keyvault_url, "KEY_CUSTODY": "vault-key"},
        vault_credential=StaticCredential(),
    )
    before = telemetry.metrics()
    customer = Customer(app, sandbox).register()
    customer.generate_key()  # Key Vault signs the new key's certificate
    after = telemetry.metrics()
    signed = moved(before, after, t.KEY_VAULT_SIGN_DURATION)
    assert set(signed) == {attrs(**{t.CUSTODY: "vault-key"})}
    assert signed[attrs(**{t.CUSTODY: "vault-key"})] >= 1


def test_no_metric_carries_a_tenant_application_or_account_id(
    app: RunningApp, sandbox: Any, telemetry: Telemetry
) -> None:
    customer = Customer(app, sandbox).link_all_the_way()
    customer.verify()
    health_check.run(app.context, budget_seconds=30)
    ids = {customer.tenant_id, customer.application_id, customer.account["id"]}
    texts = telemetry.metric_attribute_texts()
    assert texts  # the run's metrics are there to look through
    for text in texts:
        assert not GUID.search(text), text  # no id of anything, whoever it belongs to
        assert not any(i in text for i in ids), text
