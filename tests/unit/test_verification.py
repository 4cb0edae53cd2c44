"""The verification report's rules, decided from answers alone (no network)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.core.answers import GraphAnswer, MetadataAnswer, TokenAnswer
from shared.verification.checks.answers import Answers
from shared.verification.checks.check import Check
from shared.verification.checks.expiry import expiry_check
from shared.verification.checks.grants import (
    consent_check,
    directory_role_check,
    least_privilege_check,
    member_of_failure,
    role_ids_from_claims,
    role_ids_from_member_of,
)
from shared.verification.checks.graph import (
    access_reviews_check,
    directory_read_check,
    organization_check,
)
from shared.verification.checks.report import overall_status
from shared.verification.checks.table import CHECK_ORDER, decide
from shared.verification.checks.tenant import tenant_check
from shared.verification.checks.token_request import key_read_checks

NOW = datetime(2026, 11, 26, 17, 0, tzinfo=UTC)
TID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
APP = "11111111-2222-3333-4444-555555555555"
GR = "f2ef992c-3afb-46b9-b7cf-a126ee74c451"
GA = "62e90394-69f5-4237-9190-012177145e10"


BASE = Answers(
    tenant_id=TID,
    application_id=APP,
    thumbprint="AB" * 20,
    organization_name=None,
    certificate_not_after=NOW + timedelta(days=90),
    now=NOW,
    warn_days=30,
    metadata=MetadataAnswer(document={}),
)


def token_error(code: int, error: str = "invalid_client") -> TokenAnswer:
    return TokenAnswer(error=error, error_code=code, description=f"AADSTS{code}: something.")


def report_of(**answers: Any) -> dict[str, Check]:
    """The whole report, by check id, from the tenant's answers (the tenant resolves unless
    `metadata` says otherwise)."""
    return {c.id: c for c in decide(replace(BASE, **answers))}


def checks_of(answer: TokenAnswer) -> dict[str, Check]:
    return report_of(token=answer)


def test_tenant_found_unknown_invalid_and_unreachable() -> None:
    assert tenant_check(MetadataAnswer(document={}), TID).status == "pass"
    unknown = tenant_check(MetadataAnswer(status=400, error_code=90002), TID)
    assert (unknown.status, unknown.code) == ("fail", "AADSTS90002")
    assert unknown.remediation and "Directory (tenant) ID" in unknown.remediation
    invalid = tenant_check(MetadataAnswer(status=400, error_code=900023), TID)
    assert (invalid.status, invalid.code) == ("fail", "AADSTS900023")
    bare_400 = tenant_check(MetadataAnswer(status=400), TID)
    assert (bare_400.status, bare_400.code) == ("fail", "AADSTS90002")
    down = tenant_check(MetadataAnswer(status=503, transient=True), TID)
    assert down.status == "error" and down.to_json()["retryable"] is True


@pytest.mark.parametrize("code", [700016, 7000229, 7000112])
def test_application_errors_fail_the_application_and_leave_the_certificate_unjudged(
    code: int,
) -> None:
    report = checks_of(token_error(code, "unauthorized_client"))
    assert report["application"].status == "fail"
    assert report["application"].code == f"AADSTS{code}"
    assert report["application"].remediation
    assert report["certificate"].status == "skipped"
    assert "application" in report["certificate"].detail


@pytest.mark.parametrize("code", [700027, 700024, 50013, 1000502, 7000215, 7000222])
def test_credential_errors_fail_the_certificate_with_the_thumbprint(code: int) -> None:
    checks = checks_of(token_error(code))
    assert checks["application"].status == "pass"
    assert checks["certificate"].status == "fail"
    assert checks["certificate"].code == f"AADSTS{code}"
    if code != 700024:
        remediation = checks["certificate"].remediation or ""
        assert "AB" * 20 in remediation and "Certificates & secrets" in remediation
        assert "few minutes" in remediation


def test_token_endpoint_denying_the_tenant_fails_the_tenant() -> None:
    checks = checks_of(token_error(90002, "invalid_tenant"))
    assert checks["tenant"].status == "fail" and checks["tenant"].code == "AADSTS90002"
    assert checks["application"].status == "skipped" and "tenant" in checks["application"].detail


@pytest.mark.parametrize(
    "answer",
    [
        token_error(50027),  # invalid JWT: the app's own assertion, not the customer's upload
        token_error(70011, "invalid_scope"),
        token_error(1002012, "invalid_scope"),
        TokenAnswer(error="invalid_client", description="No code in this answer."),
        TokenAnswer(
            error="unexpected_answer",
            unexpected=True,
            description="Unable to get authority configuration for https://login.example/x.",
        ),
    ],
)
def test_an_answer_no_rule_knows_says_so_and_never_blames_the_certificate(
    answer: TokenAnswer,
) -> None:
    report = checks_of(answer)
    application = report["application"]
    assert application.status == "error" and application.to_json()["retryable"] is True
    assert "unexpectedly" in application.detail
    assert (answer.description or "") in application.detail
    if answer.error_code:
        assert application.code == f"AADSTS{answer.error_code}"
        assert f"AADSTS{answer.error_code}" in application.detail
    assert application.remediation and "support" in application.remediation
    assert report["certificate"].status == "skipped"
    assert "Upload certificate" not in str(report["certificate"])
    assert overall_status(list(report.values())) == "error"


def test_a_key_store_that_does_not_answer_is_a_retryable_certificate_error() -> None:
    report = report_of(key_failure="unavailable")
    assert report["certificate"].status == "error"
    assert report["certificate"].to_json()["retryable"] is True
    assert report["application"].status == "skipped"
    assert "key store" in report["application"].detail
    for check_id in ("admin_consent", "directory_role", "least_privilege", "directory_read"):
        assert report[check_id].status == "skipped"
        assert "certificate" in report[check_id].detail
    assert overall_status(list(report.values())) == "error"


@pytest.mark.parametrize("reason", ["missing", "unusable"])
def test_a_key_that_is_gone_fails_the_certificate_with_how_to_link_a_new_one(reason: str) -> None:
    certificate = report_of(key_failure=reason)["certificate"]
    assert certificate.status == "fail"
    assert certificate.remediation and "new key" in certificate.remediation


def test_token_endpoint_unreachable_is_an_error() -> None:
    checks = checks_of(TokenAnswer(transient=True, status=503))
    assert checks["application"].status == "error"
    assert checks["certificate"].status == "skipped"
    assert overall_status(list(checks.values())) == "error"


def test_consent_is_the_roles_claim() -> None:
    assert consent_check({"roles": ["AccessReview.Read.All"]}).status == "pass"
    missing = consent_check({"roles": ["User.Read.All"]})
    assert missing.status == "fail" and "Grant admin consent" in (missing.remediation or "")
    assert consent_check({}).status == "fail"


def test_directory_role_from_wids_or_member_of() -> None:
    assert role_ids_from_claims({}) is None
    assert role_ids_from_claims({"wids": [GR.upper()]}) == [GR]
    assert directory_role_check([GR], "wids").status == "pass"
    assert directory_role_check([], "wids").status == "fail"
    member_of = GraphAnswer(
        status=200,
        body={
            "value": [
                {"@odata.type": "#microsoft.graph.group", "id": "g"},
                {"@odata.type": "#microsoft.graph.directoryRole", "roleTemplateId": GR},
            ]
        },
    )
    assert role_ids_from_member_of(member_of) == [GR]
    denied = member_of_failure(GraphAnswer(status=403, code="Authorization_RequestDenied"))
    assert denied.status == "fail" and denied.code == "Authorization_RequestDenied"
    assert member_of_failure(GraphAnswer(status=None, transient=True)).status == "error"


DEFAULT_MEMBERSHIP = "0997a1d0-0d1d-4acb-b408-d5ca73121e90"
CLOUD_DEVICE_ADMIN = "7698a772-787b-4ac8-901f-60d6b08affd2"
CUSTOM_ROLE = "3b2c1a00-aaaa-4bbb-8ccc-123456789abc"


def test_least_privilege_passes_read_permissions_and_read_only_roles_only() -> None:
    ok = least_privilege_check(
        {"roles": ["AccessReview.Read.All", "AuditLog.Read.All", "User.ReadBasic.All"]},
        [GR, "88d8e3e3-8f55-4a1e-953a-9b9898b8876b", DEFAULT_MEMBERSHIP],
        "token's wids claim",
    )
    assert ok.status == "pass"
    assert "Global Reader" in ok.detail and "Directory Readers" in ok.detail
    assert DEFAULT_MEMBERSHIP not in ok.detail  # recognised, never shown


@pytest.mark.parametrize(
    "permission",
    [
        "User.ReadWrite.All",
        "Mail.Send",
        "Sites.FullControl.All",
        # None of these says "Write", which is why the old deny-list passed them.
        "DeviceManagementManagedDevices.PrivilegedOperations.All",
        "User.RevokeSessions.All",
        "User.EnableDisableAccount.All",
        "Calls.Initiate.All",
        "Sites.Selected",
    ],
)
def test_least_privilege_warns_on_every_permission_that_is_not_a_read(permission: str) -> None:
    warned = least_privilege_check(
        {"roles": ["AccessReview.Read.All", permission]}, [GR], "token's wids claim"
    )
    assert warned.status == "warn" and permission in warned.detail
    assert "AccessReview.Read.All" not in warned.detail
    assert warned.remediation


@pytest.mark.parametrize(
    ("role", "name"),
    [
        (GA, "Global Administrator"),
        (CLOUD_DEVICE_ADMIN, "Cloud Device Administrator"),
        ("9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3", "Application Administrator"),
        ("e6d1a23a-da11-4be4-9570-befc86d067a7", "Compliance Data Administrator"),
    ],
)
def test_least_privilege_warns_on_each_administrator_role_by_name(role: str, name: str) -> None:
    warned = least_privilege_check(
        {"roles": ["AccessReview.Read.All"]}, [GR, role.upper()], "service principal's memberOf"
    )
    assert warned.status == "warn" and name in warned.detail
    assert "Global Reader" not in warned.detail


def test_least_privilege_warns_on_a_role_it_cannot_name_listing_its_id() -> None:
    warned = least_privilege_check(
        {"roles": ["AccessReview.Read.All"]}, [GR, CUSTOM_ROLE], "token's wids claim"
    )
    assert warned.status == "warn"
    assert CUSTOM_ROLE in warned.detail and "cannot confirm" in warned.detail


def test_least_privilege_is_never_a_pass_when_the_roles_could_not_be_read() -> None:
    claims = {"roles": ["AccessReview.Read.All", "Sites.Selected"]}
    down = least_privilege_check(
        claims, None, "service principal's memberOf", GraphAnswer(status=503, transient=True)
    )
    assert down.status == "error" and down.to_json()["retryable"] is True
    assert "Sites.Selected" in down.detail  # what is known is still said
    denied = least_privilege_check(
        claims,
        None,
        "service principal's memberOf",
        GraphAnswer(status=403, code="Authorization_RequestDenied"),
    )
    assert denied.status == "skipped" and "could not be read" in denied.detail
    truncated = least_privilege_check(
        {"roles": ["AccessReview.Read.All"]},
        None,
        "service principal's memberOf",
        GraphAnswer(status=None, transient=True, message="next-page link on another host"),
    )
    assert truncated.status == "error" and "another host" in truncated.detail


def test_member_of_entries_without_a_type_count_under_the_directory_role_cast() -> None:
    answer = GraphAnswer(
        status=200,
        body={
            "value": [
                {"roleTemplateId": GR.upper()},
                {"@odata.type": "#microsoft.graph.group", "roleTemplateId": GA},
            ]
        },
    )
    assert role_ids_from_member_of(answer) == [GR]


def test_graph_reads() -> None:
    assert directory_read_check(GraphAnswer(status=200, body={})).status == "pass"
    refused = directory_read_check(
        GraphAnswer(
            status=403, code="Authorization_RequestDenied", message="Insufficient privileges"
        )
    )
    assert refused.status == "fail" and refused.code == "Authorization_RequestDenied"
    assert directory_read_check(GraphAnswer(status=503, transient=True)).status == "error"
    assert access_reviews_check(GraphAnswer(status=200, body={})).status == "pass"
    denied = access_reviews_check(GraphAnswer(status=403, code="Authorization_RequestDenied"))
    assert denied.status == "fail"
    by_code = access_reviews_check(GraphAnswer(status=403, code="AadPremiumLicenseRequired"))
    assert by_code.status == "warn" and "P2" in (by_code.remediation or "")
    by_message = access_reviews_check(
        GraphAnswer(
            status=403, code="Forbidden", message="The tenant needs an AAD Premium 2 license."
        )
    )
    assert by_message.status == "warn"
    assert access_reviews_check(GraphAnswer(status=429, transient=True)).status == "error"


def test_organization_match() -> None:
    org = {
        "id": TID,
        "displayName": "Contoso",
        "verifiedDomains": ["contoso.com", "contoso.onmicrosoft.com"],
    }
    assert organization_check(None, org).status == "pass"
    assert organization_check("CONTOSO.onmicrosoft.com", org).status == "pass"
    assert organization_check("contoso", org).status == "pass"
    miss = organization_check("fabrikam.com", org)
    assert miss.status == "warn" and "contoso.com" in miss.detail and miss.remediation


def test_certificate_expiry() -> None:
    assert expiry_check(NOW + timedelta(days=31), NOW, 30).status == "pass"
    soon = expiry_check(NOW + timedelta(days=10), NOW, 30)
    assert soon.status == "warn" and "10 days" in soon.detail
    assert expiry_check(NOW - timedelta(seconds=1), NOW, 30).status == "fail"


@pytest.mark.parametrize(
    ("left", "status"),
    [
        (timedelta(days=30, seconds=1), "pass"),  # more than N days: the only pass
        (timedelta(days=30), "warn"),  # exactly N days left warns (API.md)
        (timedelta(days=29, hours=23), "warn"),
        (timedelta(seconds=1), "warn"),
        (timedelta(0), "warn"),  # notAfter itself is still inside the validity period
        (timedelta(seconds=-1), "fail"),  # one second past notAfter: expired
    ],
)
def test_certificate_expiry_boundaries(left: timedelta, status: str) -> None:
    check = expiry_check(NOW + left, NOW, 30)
    assert check.status == status, check.detail
    if status != "pass":
        assert check.remediation


def test_certificate_expiry_with_no_warning_period_warns_only_on_the_last_instant() -> None:
    assert expiry_check(NOW + timedelta(seconds=1), NOW, 0).status == "pass"
    assert expiry_check(NOW, NOW, 0).status == "warn"
    assert expiry_check(NOW - timedelta(microseconds=1), NOW, 0).status == "fail"


def test_the_report_holds_all_twelve_in_order_and_names_the_blocking_step() -> None:
    report = decide(replace(BASE, metadata=MetadataAnswer(status=400, error_code=90002)))
    assert [c.id for c in report] == list(CHECK_ORDER) and len(report) == 12
    by_id = {c.id: c for c in report}
    assert by_id["tenant"].status == "fail" and by_id["certificate_expiry"].status == "pass"
    for check in report:
        if check.id not in ("tenant", "certificate_expiry"):
            assert check.status == "skipped", check
    assert "tenant" in by_id["application"].detail
    assert "certificate" in by_id["app_audience"].detail  # the step it needs, named
    assert overall_status(report) == "action_required"


def test_skipped_organization_match_names_directory_read() -> None:
    report = report_of(
        token=TokenAnswer(access_token="t", claims={"roles": ["AccessReview.Read.All"]}),
        graph={"organization": GraphAnswer(status=403)},
    )
    assert report["directory_read"].status == "fail"
    assert report["organization_match"].status == "skipped"
    assert "directory_read" in report["organization_match"].detail


def test_overall_status() -> None:
    def of(*statuses: str) -> list[Check]:
        return [Check("tenant", s, "") for s in statuses]

    assert overall_status(of("pass", "warn", "skipped")) == "connected"
    assert overall_status(of("pass", "error")) == "error"
    assert overall_status(of("error", "fail")) == "action_required"


def test_every_fail_and_warn_carries_a_remediation_and_errors_are_retryable() -> None:
    samples = [
        tenant_check(MetadataAnswer(status=400, error_code=90002), TID),
        *checks_of(token_error(700016, "unauthorized_client")).values(),
        *checks_of(token_error(700027)).values(),
        consent_check({}),
        directory_role_check([], "x"),
        least_privilege_check({"roles": ["User.ReadWrite.All"]}, [], "wids"),
        least_privilege_check({}, [CUSTOM_ROLE], "wids"),
        least_privilege_check({}, None, "memberOf", GraphAnswer(status=503, transient=True)),
        *key_read_checks("unavailable"),
        *key_read_checks("missing"),
        *checks_of(token_error(70011, "invalid_scope")).values(),
        directory_read_check(GraphAnswer(status=403)),
        access_reviews_check(GraphAnswer(status=403)),
        access_reviews_check(GraphAnswer(status=403, code="AadPremiumLicenseRequired")),
        organization_check("x", {"displayName": "y", "verifiedDomains": []}),
        expiry_check(NOW, NOW, 30),
        expiry_check(NOW - timedelta(seconds=1), NOW, 30),
        expiry_check(NOW + timedelta(days=1), NOW, 30),
    ]
    for check in samples:
        body = check.to_json()
        if body["status"] in ("fail", "warn"):
            assert body["remediation"], body
        assert ("retryable" in body) == (body["status"] == "error")
        assert body["title"]
