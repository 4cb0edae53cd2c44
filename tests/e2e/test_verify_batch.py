"""Every Graph read of a verification in one `$batch` (API.md, "Verification"), counted and
inspected at the sandbox: a throttled sub-request retried alone, sub-responses in any order,
the request budget cold, warm and in a timer run."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from shared.app.bootstrap import build_context
from shared.timer import run as health_check
from shared.verification.verify import run_checks
from tests.conftest import RunningApp
from tests.e2e.customer import Customer, check, statuses

BATCH = "/v1.0/$batch"
COUNTED = ("metadata", "token", "graph")


@pytest.fixture
def app(sandboxed_app: Callable[..., RunningApp]) -> RunningApp:
    return sandboxed_app()


def batches(record: dict[str, Any]) -> list[list[dict[str, Any]]]:
    graph = [r for r in record["value"] if r["target"] == "graph"]
    assert all(r["path"] == BATCH for r in graph), graph  # no Graph read outside a batch
    return [r["batch"] for r in graph]


def counted(record: dict[str, Any]) -> int:
    return sum(record["counts"].get(t, 0) for t in COUNTED)


@pytest.mark.parametrize(
    ("emit_wids", "path", "checks"),
    [
        (True, "/v1.0/organization", ["directory_read", "organization_match"]),
        (True, "/v1.0/identityGovernance", ["access_reviews_read"]),
        (True, "/v1.0/applications", ["app_audience", "app_credentials"]),
        (False, "/memberOf", ["directory_role", "least_privilege"]),
    ],
)
def test_a_throttled_sub_request_is_retried_alone_after_its_retry_after(
    app: RunningApp, sandbox: Any, emit_wids: bool, path: str, checks: list[str]
) -> None:
    customer = Customer(app, sandbox).link_all_the_way(emit_wids=emit_wids)
    assert customer.verify()["status"] == "connected"
    sandbox.admin.reset_requests()
    sandbox.admin.add_fault("graph", 429, path=path, retry_after=1, count=1)
    try:
        report = customer.verify()
    finally:
        sandbox.admin.clear_faults()
    assert report["status"] == "connected", statuses(report)
    assert all(check(report, c)["status"] == "pass" for c in checks)
    first, second = batches(sandbox.admin.requests())
    # organization, access reviews, the app registration and its federated credentials; and
    # memberOf when the token has no wids.
    assert len(first) == (4 if emit_wids else 5)
    [throttled] = [s for s in first if s["status"] == 429]
    assert path in throttled["path"] and throttled["fault"] is True
    # Only the throttled read is sent again; the others are not.
    assert [(s["path"], s["status"]) for s in second] == [(throttled["path"], 200)]
    assert report["durationMs"] >= 1000  # its own Retry-After was honoured


def test_a_sub_request_throttled_past_the_deadline_fails_only_its_checks(
    sandboxed_app: Callable[..., RunningApp], sandbox: Any
) -> None:
    app = sandboxed_app({"VERIFY_TIMEOUT_SECONDS": "5"})
    customer = Customer(app, sandbox).link_all_the_way()
    assert customer.verify()["status"] == "connected"
    sandbox.admin.reset_requests()
    sandbox.admin.add_fault("graph", 429, path="/v1.0/organization", retry_after=30)
    started = time.monotonic()
    try:
        report = customer.verify()
    finally:
        sandbox.admin.clear_faults()
    assert time.monotonic() - started < 5  # a 30 s Retry-After is not waited for
    directory = check(report, "directory_read")
    assert directory["status"] == "error" and directory["retryable"] is True
    assert check(report, "organization_match")["status"] == "skipped"
    for other in ("access_reviews_read", "app_audience", "app_credentials", "directory_role"):
        assert check(report, other)["status"] == "pass"
    assert report["status"] == "error"
    assert len(batches(sandbox.admin.requests())) == 1


@pytest.mark.parametrize("order", ["reverse", "shuffle"])
def test_sub_responses_in_any_order_decide_the_same_checks(
    app: RunningApp, sandbox: Any, order: str
) -> None:
    # Every Graph read answers differently, so an answer matched to the wrong read shows.
    customer = Customer(app, sandbox).link_all_the_way(emit_wids=False, licensed=False)
    customer.admin.add_password(customer.tenant_id, customer.application_id, "left behind")
    customer.admin.update_application(
        customer.tenant_id, customer.application_id, sign_in_audience="AzureADMultipleOrgs"
    )
    in_request_order = customer.verify()
    sandbox.admin.set_graph_batch_order(order)
    try:
        reports = [customer.verify() for _ in range(3 if order == "shuffle" else 1)]
    finally:
        sandbox.admin.set_graph_batch_order("request")
    expected = {c["id"]: (c["status"], c["detail"]) for c in in_request_order["checks"]}
    assert expected["access_reviews_read"][0] == "warn"
    assert expected["app_audience"][0] == "warn" and expected["app_credentials"][0] == "warn"
    assert expected["directory_read"][0] == expected["directory_role"][0] == "pass"
    for report in reports:
        assert {c["id"]: (c["status"], c["detail"]) for c in report["checks"]} == expected
        for field in ("organization", "appRegistration", "directoryRoles"):
            assert report[field] == in_request_order[field]


def test_a_throttled_batch_is_retried_whole_by_the_session(app: RunningApp, sandbox: Any) -> None:
    customer = Customer(app, sandbox).link_all_the_way()
    assert customer.verify()["status"] == "connected"
    sandbox.admin.reset_requests()
    sandbox.admin.add_fault("graph", 429, path=BATCH, retry_after=1, count=1)
    try:
        report = customer.verify()
    finally:
        sandbox.admin.clear_faults()
    assert report["status"] == "connected"
    statuses_seen = [r["status"] for r in sandbox.admin.requests()["value"] if r["path"] == BATCH]
    assert statuses_seen == [429, 200]


@pytest.mark.parametrize("emit_wids", [True, False], ids=["roles-from-wids", "roles-from-memberOf"])
def test_the_request_budget_cold_warm_and_in_a_timer_run(
    app: RunningApp, sandbox: Any, emit_wids: bool
) -> None:
    fleet = [Customer(app, sandbox).link_all_the_way(emit_wids=emit_wids) for _ in range(3)]
    # Cold: another instance of the app, nothing warm (no MSAL application, no metadata).
    cold_app = build_context(app.context.settings)
    for customer in fleet:
        sandbox.admin.reset_requests()
        report = run_checks(cold_app, stored(customer), fresh_token=True).report.to_json()
        assert report["status"] == "connected", statuses(report)
        record = sandbox.admin.requests()
        assert counted(record) <= 3, record["counts"]  # metadata, token, batch
        assert len(batches(record)) == 1
    # Warm: the customer's Verify button, through the app's routes: a fresh token, one batch.
    for customer in fleet:
        customer.verify()
        sandbox.admin.reset_requests()
        assert customer.verify()["status"] == "connected"
        record = sandbox.admin.requests()
        assert counted(record) <= 2 and record["counts"]["token"] == 1, record["counts"]
        assert len(batches(record)) == 1
    # A timer run that reuses the cached tokens: the batch, and nothing else.
    sandbox.admin.reset_requests()
    summary = health_check.run(app.context)
    record = sandbox.admin.requests()
    assert summary.checked == len(fleet) and summary.by_status["connected"] == len(fleet)
    assert counted(record) == len(fleet), record["counts"]
    assert record["counts"].get("token", 0) == 0


def stored(customer: Customer) -> Any:
    account = customer.app.context.accounts.get_account("local-dev", customer.account["id"])
    assert account is not None
    return account
