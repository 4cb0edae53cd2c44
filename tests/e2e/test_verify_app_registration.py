"""The app registration checks end to end (API.md: `app_audience`, `app_credentials`, the report's
`appRegistration`): what a customer sees after changing their registration in the sandbox
tenant, the stand-in for the Entra admin center."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from shared.core import certificates
from shared.support.timefmt import utc_now
from shared.timer import run as health_check
from tests.conftest import RunningApp
from tests.e2e.customer import Customer, check, statuses

APP_CHECKS = ("app_audience", "app_credentials")
SECRET_WARNING = (
    "anyone holding that secret can read your tenant as this app; remove it under "
    "Certificates & secrets > Client secrets"
)


@pytest.fixture
def customer(sandboxed_app: Callable[..., RunningApp], sandbox: Any) -> Customer:
    return Customer(sandboxed_app(), sandbox)


def others_pass(report: dict[str, Any], *besides: str) -> None:
    rest = {k: s for k, s in statuses(report).items() if k not in besides}
    assert set(rest.values()) == {"pass"}, rest


def test_a_registration_as_the_guide_asks_passes_both(customer: Customer) -> None:
    customer.link_all_the_way()
    report = customer.verify()
    assert check(report, "app_audience")["status"] == "pass"
    credentials = check(report, "app_credentials")
    assert credentials["status"] == "pass" and customer.key["thumbprint"] in credentials["detail"]
    assert report["appRegistration"]["clientSecrets"] == 0


@pytest.mark.parametrize("audience", ["AzureADMultipleOrgs", "AzureADandPersonalMicrosoftAccount"])
def test_a_multi_tenant_registration_warns(customer: Customer, audience: str) -> None:
    customer.link_all_the_way()
    customer.admin.update_application(
        customer.tenant_id, customer.application_id, sign_in_audience=audience
    )
    report = customer.verify()
    warned = check(report, "app_audience")
    assert warned["status"] == "warn" and "any tenant could consent" in warned["detail"]
    assert "Supported account types" in warned["remediation"]
    assert report["appRegistration"]["signInAudience"] == audience
    others_pass(report, "app_audience")
    assert report["status"] == "connected"  # a warning: the account still works
    assert customer.current()["status"] == "connected"


def test_a_client_secret_beside_the_certificate_warns_until_removed(customer: Customer) -> None:
    customer.link_all_the_way()
    secret = customer.admin.add_password(customer.tenant_id, customer.application_id, "old")
    report = customer.verify()
    warned = check(report, "app_credentials")
    assert warned["status"] == "warn" and SECRET_WARNING in warned["detail"]
    assert "Client secrets" in warned["remediation"]
    assert report["appRegistration"]["clientSecrets"] == 1
    others_pass(report, "app_credentials")
    assert report["status"] == "connected"

    customer.admin.delete_password(customer.tenant_id, customer.application_id, secret["keyId"])
    again = customer.verify()
    assert check(again, "app_credentials")["status"] == "pass"
    assert again["appRegistration"]["clientSecrets"] == 0


def test_expired_certificates_left_on_the_registration_warn_by_thumbprint(
    customer: Customer,
) -> None:
    customer.link_all_the_way()
    made = utc_now() - timedelta(days=400)
    old = certificates.generate("Old", validity_days=365, key_size=2048, now=made).info
    customer.admin.upload_certificate(
        customer.tenant_id, customer.application_id, old.certificate_pem
    )
    report = customer.verify()
    warned = check(report, "app_credentials")
    assert warned["status"] == "warn" and old.thumbprint in warned["detail"]
    assert customer.key["thumbprint"] not in warned["detail"]
    assert "expired certificates" in warned["remediation"]
    listed = {c["thumbprint"]: c for c in report["appRegistration"]["certificates"]}
    assert listed[customer.key["thumbprint"]]["usedBy"] == "this-account"
    assert listed[old.thumbprint]["usedBy"] == "other"
    assert listed[old.thumbprint]["notAfter"] < report["checkedAt"]
    others_pass(report, "app_credentials")


def test_an_unreadable_registration_is_skipped_with_a_remediation_never_a_failure(
    customer: Customer,
) -> None:
    customer.link_all_the_way()
    customer.admin.update_tenant(customer.tenant_id, application_readable=False)
    report = customer.verify()
    for check_id in APP_CHECKS:
        skipped = check(report, check_id)
        assert skipped["status"] == "skipped", skipped
        assert "HTTP 403" in skipped["detail"] and "Global Reader" in skipped["detail"]
        assert skipped["code"] == "Authorization_RequestDenied"
        assert skipped["remediation"] and "Check it yourself" in skipped["remediation"]
    assert report["appRegistration"] is None
    others_pass(report, *APP_CHECKS)
    assert report["status"] == "connected"
    assert customer.current()["status"] == "connected"


def test_without_an_accepted_certificate_both_are_skipped_naming_it(customer: Customer) -> None:
    customer.register()
    customer.generate_key()
    customer.connect()  # the certificate was never uploaded
    report = customer.verify()
    for check_id in APP_CHECKS:
        skipped = check(report, check_id)
        assert skipped["status"] == "skipped" and "(certificate)" in skipped["detail"]
    assert report["appRegistration"] is None


def test_a_registration_read_that_fails_for_a_moment_is_an_error_of_its_checks_only(
    customer: Customer,
) -> None:
    customer.link_all_the_way()
    assert customer.verify()["status"] == "connected"
    customer.admin.add_fault("graph", 503, path="/v1.0/applications")
    try:
        report = customer.verify()
    finally:
        customer.admin.clear_faults()
    for check_id in APP_CHECKS:
        failed = check(report, check_id)
        assert failed["status"] == "error" and failed["retryable"] is True
    others_pass(report, *APP_CHECKS)
    assert report["status"] == "error"
    assert customer.current()["status"] == "connected"  # an error never flips the account


def test_the_timer_sees_a_client_secret_added_since(customer: Customer) -> None:
    customer.link_all_the_way()
    assert customer.verify()["status"] == "connected"
    customer.admin.add_password(customer.tenant_id, customer.application_id, "later")
    health_check.run(customer.app.context, budget_seconds=30)
    last = customer.current()["lastVerification"]
    assert check(last, "app_credentials")["status"] == "warn"
    assert last["appRegistration"]["clientSecrets"] == 1
