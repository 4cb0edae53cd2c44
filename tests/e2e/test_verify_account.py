"""POST /api/accounts/{id}/verify against the sandbox tenant: every row of API.md's checks table."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from shared.linking import keys
from shared.support.timefmt import utc_now
from shared.verification.checks.table import CHECK_ORDER
from tests.conftest import RunningApp
from tests.e2e.customer import TOKEN_CHECKS, Customer, check, graph_requests, statuses

DEFAULT_MEMBERSHIP = "0997a1d0-0d1d-4acb-b408-d5ca73121e90"


@pytest.fixture
def app(sandboxed_app: Callable[..., RunningApp]) -> RunningApp:
    return sandboxed_app()


@pytest.fixture
def customer(app: RunningApp, sandbox: Any) -> Customer:
    return Customer(app, sandbox)


def assert_shape(report: dict[str, Any]) -> None:
    assert [c["id"] for c in report["checks"]] == list(CHECK_ORDER)
    for c in report["checks"]:
        assert c["status"] in ("pass", "warn", "fail", "skipped", "error")
        assert c["title"] and c["detail"]
        if c["status"] in ("fail", "warn"):
            assert c["remediation"], c
        assert c.get("retryable") is (True if c["status"] == "error" else None)


def test_a_customer_who_followed_the_guide_is_connected(customer: Customer) -> None:
    customer.link_all_the_way()
    report = customer.verify()
    assert_shape(report)
    assert set(statuses(report).values()) == {"pass"}, statuses(report)
    assert report["status"] == "connected" and report["accountId"] == customer.account["id"]
    assert report["grantedPermissions"] == ["AccessReview.Read.All"]
    # Entra adds the service principal's default membership to `wids` beside its real roles
    # (FACTS §3); the customer sees only the role they assigned.
    assert report["directoryRoles"] == ["Global Reader"]
    assert DEFAULT_MEMBERSHIP not in str(report)
    assert check(report, "least_privilege")["status"] == "pass"
    assert report["organization"]["id"] == customer.tenant_id
    assert customer.domains[0] in report["organization"]["verifiedDomains"]
    assert report["cloud"] == "global"
    assert isinstance(report["durationMs"], int)
    registration = customer.admin.get_application(customer.tenant_id, customer.application_id)
    assert report["appRegistration"] == {
        "objectId": registration["objectId"],
        "signInAudience": "AzureADMyOrg",
        "clientSecrets": 0,
        "certificates": [
            {
                "thumbprint": customer.key["thumbprint"],
                "notAfter": customer.key["notAfter"],
                "usedBy": "this-account",
            }
        ],
        "federatedCredentials": [],  # read in the same $batch; this app has none
    }
    assert report["rotation"] is None
    account = customer.current()
    assert account["status"] == "connected"
    assert account["lastVerifiedAt"] == report["checkedAt"]
    assert account["lastVerification"] == report
    assert "PRIVATE KEY" not in str(report) and "eyJ" not in str(report)


@pytest.mark.parametrize("fmt", ["pem", "crt"])
def test_pem_and_crt_uploads_work_as_well(customer: Customer, fmt: str) -> None:
    customer.register()
    customer.generate_key()
    customer.upload_certificate(fmt)
    customer.connect()
    assert customer.verify()["status"] == "connected"


def test_unknown_tenant(customer: Customer) -> None:
    customer.tenant_id = str(uuid.uuid4())
    customer.application_id = str(uuid.uuid4())
    customer.domains = []
    customer.generate_key()
    customer.connect()
    report = customer.verify()
    assert_shape(report)
    tenant = check(report, "tenant")
    assert (tenant["status"], tenant["code"]) == ("fail", "AADSTS90002")
    for check_id in set(CHECK_ORDER) - {"tenant", "certificate_expiry"}:
        assert check(report, check_id)["status"] == "skipped"
    assert check(report, "application")["detail"].find("tenant") >= 0
    assert check(report, "certificate_expiry")["status"] == "pass"
    assert report["status"] == "action_required"
    assert customer.current()["status"] == "action_required"


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        ("unknown_app", "AADSTS700016"),
        ("no_service_principal", "AADSTS7000229"),
        ("disabled", "AADSTS7000112"),
    ],
)
def test_application_problems(customer: Customer, setup: str, code: str) -> None:
    customer.register()
    if setup == "unknown_app":
        customer.application_id = str(uuid.uuid4())
    elif setup == "no_service_principal":
        customer.admin.update_application(
            customer.tenant_id, customer.application_id, service_principal=False
        )
    else:
        customer.admin.update_application(
            customer.tenant_id, customer.application_id, enabled=False
        )
    customer.generate_key()
    if setup != "unknown_app":
        customer.upload_certificate()
    customer.connect()
    report = customer.verify()
    assert_shape(report)
    application = check(report, "application")
    assert (application["status"], application["code"]) == ("fail", code)
    assert check(report, "certificate")["status"] == "skipped"
    assert all(check(report, c)["status"] == "skipped" for c in TOKEN_CHECKS)
    assert report["status"] == "action_required"


def test_certificate_not_uploaded(customer: Customer) -> None:
    customer.register()
    customer.generate_key()
    customer.connect()
    report = customer.verify()
    assert_shape(report)
    certificate = check(report, "certificate")
    assert (certificate["status"], certificate["code"]) == ("fail", "AADSTS700027")
    assert customer.key["thumbprint"] in certificate["remediation"]
    assert "few minutes" in certificate["remediation"]
    assert check(report, "application")["status"] == "pass"
    assert all(check(report, c)["status"] == "skipped" for c in TOKEN_CHECKS)


def test_certificate_uploaded_after_a_failed_verification_is_seen(customer: Customer) -> None:
    customer.register()
    customer.generate_key()
    customer.connect()
    assert customer.verify()["status"] == "action_required"
    customer.upload_certificate()
    assert customer.verify()["status"] == "connected"


def test_consent_missing_then_granted_between_two_verifications(customer: Customer) -> None:
    customer.link_all_the_way(consent=False)
    first = customer.verify()
    assert check(first, "admin_consent")["status"] == "fail"
    assert "Grant admin consent" in check(first, "admin_consent")["remediation"]
    assert check(first, "access_reviews_read")["status"] == "fail"
    assert check(first, "access_reviews_read")["code"] == "Authorization_RequestDenied"
    assert first["status"] == "action_required"
    customer.admin.set_permissions(
        customer.tenant_id, customer.application_id, ["AccessReview.Read.All"]
    )
    second = customer.verify()
    assert second["status"] == "connected", statuses(second)
    assert customer.current()["status"] == "connected"


def test_consent_revoked_after_connecting(customer: Customer) -> None:
    customer.link_all_the_way()
    assert customer.verify()["status"] == "connected"
    customer.admin.set_permissions(customer.tenant_id, customer.application_id, [])
    report = customer.verify()
    assert check(report, "admin_consent")["status"] == "fail"
    assert customer.current()["status"] == "action_required"


def test_global_reader_missing(customer: Customer) -> None:
    customer.link_all_the_way(role=False)
    report = customer.verify()
    assert_shape(report)
    assert check(report, "directory_role")["status"] == "fail"
    assert "Roles & admins" in check(report, "directory_role")["remediation"]
    directory = check(report, "directory_read")
    assert (directory["status"], directory["code"]) == ("fail", "Authorization_RequestDenied")
    assert check(report, "organization_match")["status"] == "skipped"
    assert "directory_read" in check(report, "organization_match")["detail"]
    assert check(report, "admin_consent")["status"] == "pass"


@pytest.mark.parametrize("role", [True, False])
def test_without_a_wids_claim_the_service_principal_roles_decide(
    customer: Customer, role: bool
) -> None:
    customer.link_all_the_way(emit_wids=False, role=role)
    customer.sandbox.admin.reset_requests()
    report = customer.verify()
    assert check(report, "directory_role")["status"] == ("pass" if role else "fail")
    graph_paths = [r["path"] for r in graph_requests(customer.admin.requests())]
    assert any("memberOf" in p for p in graph_paths)


@pytest.mark.parametrize("style", ["code", "message"])
def test_unlicensed_tenant_warns_about_p2(customer: Customer, style: str) -> None:
    customer.link_all_the_way(licensed=False)
    customer.admin.update_tenant(customer.tenant_id, license_error_style=style)
    report = customer.verify()
    reviews = check(report, "access_reviews_read")
    assert reviews["status"] == "warn"
    assert "P2" in reviews["remediation"] and "Governance" in reviews["remediation"]
    assert report["status"] == "connected"


def test_organization_name_that_matches_nothing_warns_with_the_domains(customer: Customer) -> None:
    customer.register()
    customer.generate_key()
    customer.upload_certificate()
    customer.connect(organizationName="fabrikam.com")
    report = customer.verify()
    match = check(report, "organization_match")
    assert match["status"] == "warn" and customer.domains[0] in match["detail"]
    assert report["status"] == "connected"


def test_organization_display_name_matches(customer: Customer) -> None:
    customer.register(name="Northwind")
    customer.generate_key()
    customer.upload_certificate()
    customer.connect(organizationName="NORTHWIND")
    assert check(customer.verify(), "organization_match")["status"] == "pass"


def test_more_than_read_access_warns_with_each_extra(customer: Customer) -> None:
    customer.link_all_the_way()
    customer.admin.set_permissions(
        customer.tenant_id,
        customer.application_id,
        ["AccessReview.Read.All", "User.ReadWrite.All", "Mail.Send"],
    )
    customer.admin.set_directory_roles(
        customer.tenant_id, customer.application_id, ["Global Reader", "Global Administrator"]
    )
    report = customer.verify()
    least = check(report, "least_privilege")
    assert least["status"] == "warn"
    for extra in ("User.ReadWrite.All", "Mail.Send", "Global Administrator"):
        assert extra in least["detail"]
    assert report["status"] == "connected"


@pytest.mark.parametrize("emit_wids", [True, False], ids=["roles-from-wids", "roles-from-memberOf"])
@pytest.mark.parametrize(
    "extra_role",
    ["Cloud Device Administrator", "Application Administrator", "Intune Administrator"],
)
def test_an_administrator_role_beside_global_reader_warns_by_name(
    customer: Customer, emit_wids: bool, extra_role: str
) -> None:
    customer.link_all_the_way(emit_wids=emit_wids)
    customer.admin.set_directory_roles(
        customer.tenant_id, customer.application_id, ["Global Reader", extra_role]
    )
    customer.admin.reset_requests()
    report = customer.verify()
    graph_paths = [r["path"] for r in graph_requests(customer.admin.requests())]
    assert any("memberOf" in p for p in graph_paths) is not emit_wids
    least = check(report, "least_privilege")
    assert least["status"] == "warn", least
    assert extra_role in least["detail"] and "Global Reader" not in least["detail"]
    assert least["remediation"]
    assert check(report, "directory_role")["status"] == "pass"
    assert sorted(report["directoryRoles"]) == sorted(["Global Reader", extra_role])
    assert DEFAULT_MEMBERSHIP not in str(report)
    assert report["status"] == "connected"


@pytest.mark.parametrize("emit_wids", [True, False], ids=["roles-from-wids", "roles-from-memberOf"])
def test_read_only_roles_and_read_permissions_pass(customer: Customer, emit_wids: bool) -> None:
    customer.link_all_the_way(emit_wids=emit_wids)
    customer.admin.set_permissions(
        customer.tenant_id,
        customer.application_id,
        ["AccessReview.Read.All", "AuditLog.Read.All", "User.ReadBasic.All"],
    )
    customer.admin.set_directory_roles(
        customer.tenant_id,
        customer.application_id,
        ["Global Reader", "Directory Readers", "Message Center Reader"],
    )
    least = check(customer.verify(), "least_privilege")
    assert least["status"] == "pass", least
    assert ("wids" if emit_wids else "memberOf") in least["detail"]  # says where roles came from


@pytest.mark.parametrize(
    "permission", ["Sites.Selected", "User.RevokeSessions.All", "Calls.Initiate.All"]
)
def test_a_permission_that_acts_without_saying_write_warns(
    customer: Customer, permission: str
) -> None:
    customer.link_all_the_way()
    customer.admin.set_permissions(
        customer.tenant_id, customer.application_id, ["AccessReview.Read.All", permission]
    )
    least = check(customer.verify(), "least_privilege")
    assert least["status"] == "warn" and permission in least["detail"]


def test_a_role_the_app_cannot_name_warns_by_id(customer: Customer) -> None:
    custom = str(uuid.uuid4())
    customer.link_all_the_way(emit_wids=False)
    customer.admin.set_directory_roles(
        customer.tenant_id, customer.application_id, ["Global Reader", custom]
    )
    report = customer.verify()
    least = check(report, "least_privilege")
    assert least["status"] == "warn" and custom in least["detail"]
    assert "cannot confirm" in least["detail"]
    assert custom in report["directoryRoles"]


def test_roles_on_every_memberof_page_count(customer: Customer) -> None:
    # Graph pages memberOf by 100: Global Reader and an administrator role on the second page.
    filler = [str(uuid.uuid4()) for _ in range(120)]
    customer.link_all_the_way(emit_wids=False, role=False)
    customer.admin.set_directory_roles(
        customer.tenant_id,
        customer.application_id,
        [*filler, "Cloud Device Administrator", "Global Reader"],
    )
    customer.admin.reset_requests()
    report = customer.verify()
    record = customer.admin.requests()
    member_of = [r for r in graph_requests(record) if "memberOf" in r["path"]]
    assert len(member_of) == 2  # the first page in the batch, the second by a plain GET
    assert all(r["path"].endswith("/memberOf/microsoft.graph.directoryRole") for r in member_of)
    assert "skiptoken" in str(member_of[1]["query"])
    assert record["counts"]["graph"] == 2
    assert check(report, "directory_role")["status"] == "pass"
    least = check(report, "least_privilege")
    assert least["status"] == "warn" and "Cloud Device Administrator" in least["detail"]
    assert len(report["directoryRoles"]) == 122


def test_roles_that_could_not_be_read_never_pass_least_privilege(customer: Customer) -> None:
    # No wids and no Global Reader: memberOf is refused (403), so nothing is known of the roles.
    customer.link_all_the_way(emit_wids=False, role=False)
    report = customer.verify()
    assert check(report, "directory_role")["status"] == "fail"
    least = check(report, "least_privilege")
    assert least["status"] == "skipped" and "could not be read" in least["detail"]


def test_roles_unreadable_for_a_moment_are_an_error(customer: Customer) -> None:
    customer.link_all_the_way(emit_wids=False)
    assert customer.verify()["status"] == "connected"
    customer.admin.add_fault("graph", 503, path="memberOf")
    try:
        report = customer.verify()
    finally:
        customer.admin.clear_faults()
    least = check(report, "least_privilege")
    assert least["status"] == "error" and least["retryable"] is True
    assert check(report, "directory_role")["status"] == "error"
    assert check(report, "directory_read")["status"] == "pass"
    assert report["status"] == "error"
    assert customer.current()["status"] == "connected"


def test_certificate_expiring_soon_warns(customer: Customer) -> None:
    customer.register()
    customer.generate_key(validityDays=10)
    customer.upload_certificate()
    customer.connect()
    report = customer.verify()
    expiry = check(report, "certificate_expiry")
    assert expiry["status"] == "warn" and "days" in expiry["detail"]
    assert report["status"] == "connected"


def test_expired_certificate_fails(customer: Customer, app: RunningApp) -> None:
    customer.register()
    # A certificate made 400 days ago for one year, as an old link would have, stored exactly as
    # POST /api/keys stores one.
    made = utc_now() - timedelta(days=400)
    stored = keys.store_key(
        app.context, "local-dev", customer.tenant_id, customer.application_id, "Old", now=made
    )
    customer.key = {"keyId": stored.key_id}
    customer.admin.upload_certificate(
        customer.tenant_id, customer.application_id, stored.certificate_pem
    )
    customer.connect()
    report = customer.verify()
    assert check(report, "certificate_expiry")["status"] == "fail"
    assert check(report, "certificate")["status"] == "fail"  # Entra refuses an expired key too
    assert report["status"] == "action_required"


def test_throttled_token_endpoint_is_retried_after_retry_after(customer: Customer) -> None:
    customer.link_all_the_way()
    customer.admin.reset_requests()
    customer.admin.add_fault("token", 429, retry_after=1, count=1)
    report = customer.verify()
    assert report["status"] == "connected"
    assert customer.admin.requests()["counts"]["token"] == 2
    assert report["durationMs"] >= 1000  # it waited as Retry-After asked


def test_graph_down_is_an_error_that_keeps_the_account_status(customer: Customer) -> None:
    customer.link_all_the_way()
    connected = customer.verify()
    assert connected["status"] == "connected"
    customer.admin.add_fault("graph", 503)
    try:
        report = customer.verify()
    finally:
        customer.admin.clear_faults()
    assert report["status"] == "error"
    directory = check(report, "directory_read")
    assert directory["status"] == "error" and directory["retryable"] is True
    assert check(report, "access_reviews_read")["status"] == "error"
    assert check(report, "organization_match")["status"] == "skipped"
    account = customer.current()
    assert account["status"] == "connected"
    assert account["lastVerification"] == report
    assert account["lastVerifiedAt"] == report["checkedAt"]


def test_error_on_a_new_account_keeps_it_pending(customer: Customer) -> None:
    customer.link_all_the_way()
    customer.admin.add_fault("token", 503)
    try:
        report = customer.verify()
    finally:
        customer.admin.clear_faults()
    assert report["status"] == "error"
    assert check(report, "application")["status"] == "error"
    assert customer.current()["status"] == "pending"


def test_a_tenant_in_another_cloud_is_found_by_auto(customer: Customer) -> None:
    customer.link_all_the_way(cloud="usgov")
    report = customer.verify()
    assert report["cloud"] == "usgov"
    assert report["status"] == "connected", statuses(report)


@pytest.mark.parametrize("emit_wids", [True, False], ids=["roles-from-wids", "roles-from-memberOf"])
def test_request_budget_cold_and_warm(customer: Customer, emit_wids: bool) -> None:
    customer.link_all_the_way(emit_wids=emit_wids)
    customer.admin.reset_requests()
    assert customer.verify()["status"] == "connected"
    cold = customer.admin.requests()["counts"]
    assert sum(cold.get(t, 0) for t in ("metadata", "token", "graph")) <= 3, cold
    assert cold.get("graph", 0) == 1  # metadata, token, one batch
    customer.admin.reset_requests()
    assert customer.verify()["status"] == "connected"
    warm = customer.admin.requests()["counts"]
    assert sum(warm.get(t, 0) for t in ("metadata", "token", "graph")) <= 2, warm
    assert warm.get("token", 0) == 1  # a customer's verification always gets a fresh token
    assert warm.get("graph", 0) == 1


def test_unknown_account_is_404(app: RunningApp) -> None:
    response = app.http.post(app.api(f"/accounts/{uuid.uuid4()}/verify"))
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/problem+json"
    assert app.http.post(app.api("/accounts/nope/verify")).status_code == 404


def test_unlink_drops_the_warm_sign_in_state(customer: Customer, app: RunningApp) -> None:
    customer.link_all_the_way()
    customer.verify()
    assert app.context.tenant_client().warm_apps == 1
    assert app.http.delete(app.api(f"/accounts/{customer.account['id']}")).status_code == 204
    assert app.context.tenant_client().warm_apps == 0
