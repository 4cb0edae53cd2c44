"""Verification when a dependency fails: the key store down or the key gone, and waits that must
end within VERIFY_TIMEOUT_SECONDS whatever Retry-After Entra or Graph send (API.md,
"Verification")."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from shared.timer import run as health_check
from tests.conftest import RunningApp
from tests.contract.test_key_store import StaticCredential
from tests.e2e.customer import TOKEN_CHECKS, Customer, check, faulted

TIMEOUT = 5  # VERIFY_TIMEOUT_SECONDS' lowest value
SLACK = 3.0  # one attempt's end, the host and the test's own requests


@pytest.fixture
def vault_app(sandboxed_app: Callable[..., RunningApp], sandbox: Any) -> Callable[[], RunningApp]:
    def start() -> RunningApp:
        return sandboxed_app(
            {"KEY_VAULT_URL": sandbox.keyvault_url}, vault_credential=StaticCredential()
        )

    return start


def assert_key_store_error(report: dict[str, Any]) -> None:
    assert report["status"] == "error"
    certificate = check(report, "certificate")
    assert certificate["status"] == "error" and certificate["retryable"] is True
    assert "key store" in certificate["detail"]
    assert check(report, "application")["status"] == "skipped"
    for check_id in TOKEN_CHECKS:
        skipped = check(report, check_id)
        assert skipped["status"] == "skipped" and "certificate" in skipped["detail"]
    assert check(report, "tenant")["status"] == "pass"
    assert check(report, "certificate_expiry")["status"] == "pass"


def test_key_vault_down_during_a_verification_is_a_200_error_report(
    vault_app: Callable[[], RunningApp], sandbox: Any
) -> None:
    app = vault_app()
    customer = Customer(app, sandbox).link_all_the_way()
    with faulted(sandbox, "keyvault", 503):
        response = app.http.post(app.api(f"/accounts/{customer.account['id']}/verify"))
    assert response.status_code == 200, response.text
    report = response.json()
    assert_key_store_error(report)
    account = customer.current()
    assert account["status"] == "pending"  # keeps its status
    assert account["lastVerification"] == report
    assert customer.verify()["status"] == "connected"  # the vault is back


def test_key_vault_down_keeps_a_connected_account_connected(
    vault_app: Callable[[], RunningApp], sandbox: Any
) -> None:
    first = vault_app()
    customer = Customer(first, sandbox).link_all_the_way()
    assert customer.verify()["status"] == "connected"
    # A second instance of the app (a cold start: no key in memory) while the vault is down.
    second = vault_app()
    with faulted(sandbox, "keyvault", 503):
        response = second.http.post(second.api(f"/accounts/{customer.account['id']}/verify"))
    assert response.status_code == 200, response.text
    assert_key_store_error(response.json())
    account = second.http.get(second.api(f"/accounts/{customer.account['id']}")).json()
    assert account["status"] == "connected"


def test_the_timer_records_an_error_when_the_vault_is_down(
    vault_app: Callable[[], RunningApp], sandbox: Any
) -> None:
    app = vault_app()
    customer = Customer(app, sandbox).link_all_the_way()
    with faulted(sandbox, "keyvault", 503):
        health_check.run(app.context)
    account = customer.current()
    assert account["status"] == "pending"
    assert account["lastVerification"] is not None  # recorded, not lost
    assert_key_store_error(account["lastVerification"])


def test_a_private_key_gone_from_the_store_fails_the_certificate(
    sandboxed_app: Callable[..., RunningApp], sandbox: Any
) -> None:
    app = sandboxed_app()
    customer = Customer(app, sandbox).link_all_the_way()
    app.context.keys.delete(customer.key["keyId"])
    report = customer.verify()  # a 200 report, not a 500
    certificate = check(report, "certificate")
    assert certificate["status"] == "fail" and "missing" in certificate["detail"]
    assert "new key" in certificate["remediation"]
    assert report["status"] == "action_required"
    assert customer.current()["status"] == "action_required"


@pytest.mark.parametrize("target", ["token", "graph"])
def test_a_long_retry_after_never_holds_a_verification_past_its_timeout(
    sandboxed_app: Callable[..., RunningApp], sandbox: Any, target: str
) -> None:
    app = sandboxed_app({"VERIFY_TIMEOUT_SECONDS": str(TIMEOUT)})
    customer = Customer(app, sandbox).link_all_the_way()
    assert customer.verify()["status"] == "connected"
    with faulted(sandbox, target, 429, retry_after=30):
        started = time.monotonic()
        response = app.http.post(app.api(f"/accounts/{customer.account['id']}/verify"))
        elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    report = response.json()
    assert elapsed < TIMEOUT + SLACK, elapsed
    assert report["durationMs"] < (TIMEOUT + SLACK) * 1000
    assert report["status"] == "error"
    failed = ["application"] if target == "token" else ["directory_read", "access_reviews_read"]
    for check_id in failed:
        assert check(report, check_id)["status"] == "error", check(report, check_id)
        assert check(report, check_id)["retryable"] is True
    assert customer.current()["status"] == "connected"
