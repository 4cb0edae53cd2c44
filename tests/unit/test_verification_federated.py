"""The report of an account that signs in with a federated credential (API.md, "Connecting and
verifying"): Entra's answers to the issuer's assertion, as the customer reads them."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.core.answers import GraphAnswer, MetadataAnswer, TokenAnswer
from shared.core.federation import AUDIENCE, Federation
from shared.verification.checks.answers import Answers, Renewal
from shared.verification.checks.check import Check
from shared.verification.checks.report import overall_status, report_facts
from shared.verification.checks.table import CHECK_ORDER, decide

NOW = datetime(2026, 11, 26, 17, 0, tzinfo=UTC)
TID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
APP = "11111111-2222-3333-4444-555555555555"
ISSUER = "https://links.example.com/api/oidc"
KEY = "0b9e8f5e-7d8e-4c2a-9b6f-3a1d2c4e5f60"
SUBJECT = f"m365link:key:{KEY}"
MINE = Federation(ISSUER, SUBJECT, AUDIENCE, "")
TOKEN = TokenAnswer(access_token="t", claims={"roles": ["AccessReview.Read.All"], "wids": []})

BASE = Answers(
    tenant_id=TID,
    application_id=APP,
    thumbprint="",
    organization_name=None,
    certificate_not_after=None,
    now=NOW,
    warn_days=30,
    metadata=MetadataAnswer(document={}),
    federation=MINE,
    issuer=ISSUER,
    download_path=f"/api/keys/{KEY}?format=json",
)


def credential(subject: str = SUBJECT, issuer: str = ISSUER) -> dict[str, Any]:
    return {"name": "n", "issuer": issuer, "subject": subject, "audiences": [AUDIENCE]}


def registration(*credentials: dict[str, Any], secrets: int = 0) -> dict[str, GraphAnswer]:
    app = {
        "id": "00000000-aaaa-bbbb-cccc-000000000001",
        "signInAudience": "AzureADMyOrg",
        "keyCredentials": [],
        "passwordCredentials": [{"hint": "abc"}] * secrets,
    }
    return {
        "application": GraphAnswer(status=200, body=app),
        "federatedCredentials": GraphAnswer(status=200, body={"value": list(credentials)}),
    }


def report(**answers: Any) -> dict[str, Check]:
    return {c.id: c for c in decide(replace(BASE, **answers))}


def entra(code: int) -> TokenAnswer:
    return TokenAnswer(
        error="invalid_client", error_code=code, description=f"AADSTS{code}: something."
    )


def test_an_accepted_assertion_passes_and_every_title_names_the_federated_credential() -> None:
    checks = report(token=TOKEN, graph=registration(credential()))
    assert list(checks) == list(CHECK_ORDER)
    certificate = checks["certificate"].to_json()
    assert certificate["status"] == "pass"
    assert certificate["title"] == "Federated credential accepted by Entra ID"
    assert ISSUER in certificate["detail"] and SUBJECT in certificate["detail"]
    expiry = checks["certificate_expiry"].to_json()
    assert expiry["status"] == "pass" and "does not expire" in expiry["detail"]
    assert "federated credential" in expiry["title"].lower()
    held = checks["app_credentials"].to_json()
    assert held["status"] == "pass", held
    assert "federated credential" in held["title"] and SUBJECT in held["detail"]


@pytest.mark.parametrize("code", [70021, 700211, 700212, 700213, 7002137, 7002138])
def test_no_matching_credential_is_the_customers_fail_naming_what_to_enter(code: int) -> None:
    checks = report(token=entra(code))
    assert checks["application"].status == "pass"  # Entra found the app to judge the credential
    failed = checks["certificate"]
    assert failed.status == "fail" and failed.code == f"AADSTS{code}"
    assert failed.remediation is not None
    for exact in (ISSUER, SUBJECT, AUDIENCE, "no trailing slash"):
        assert exact in failed.remediation
    assert f"az ad app federated-credential create --id {APP}" in failed.remediation
    assert "?format=json" in failed.remediation
    assert overall_status(list(checks.values())) == "action_required"


@pytest.mark.parametrize("code", [50166, 90061, 501661, 7000272])
def test_an_issuer_entra_cannot_use_is_a_retryable_error_the_customer_does_nothing_about(
    code: int,
) -> None:
    checks = report(token=entra(code))
    error = checks["certificate"].to_json()
    assert error["status"] == "error" and error["retryable"] is True
    assert error["code"] == f"AADSTS{code}"
    assert "change nothing" in error["detail"] and "service's issuer" in error["detail"]
    assert overall_status(list(checks.values())) == "error"  # the account status is kept


def test_the_issuer_key_not_signing_is_an_error_and_a_removed_credential_a_fail() -> None:
    down = report(key_failure="unavailable")["certificate"]
    assert down.status == "error" and "issuer key" in down.detail
    gone = report(key_failure="missing")["certificate"]
    assert (
        gone.status == "fail"
        and gone.remediation
        and "link the account again" in (gone.remediation)
    )


def test_app_credentials_warns_when_this_accounts_credential_is_not_listed_exactly() -> None:
    for listed in (
        credential(SUBJECT.upper()),  # the case differs: Entra would not match it
        credential(issuer=ISSUER + "/"),
        credential("m365link:key:someone-else"),
    ):
        checks = report(token=TOKEN, graph=registration(listed))
        held = checks["app_credentials"]
        assert held.status == "warn", listed
        assert SUBJECT in held.detail and held.remediation and "Other issuer" in held.remediation


def test_app_credentials_still_warns_about_client_secrets() -> None:
    held = report(token=TOKEN, graph=registration(credential(), secrets=1))["app_credentials"]
    assert held.status == "warn" and "client secret" in held.detail


def test_unreadable_federated_credentials_are_skipped_not_failed() -> None:
    graph = registration(credential())
    graph["federatedCredentials"] = GraphAnswer(status=403, code="Authorization_RequestDenied")
    held = report(token=TOKEN, graph=graph)["app_credentials"]
    assert held.status == "skipped" and held.remediation


def test_the_report_lists_the_registrations_federated_credentials_with_whose_they_are() -> None:
    answers = replace(
        BASE, token=TOKEN, graph=registration(credential(), credential("m365link:key:x"))
    )
    shown = report_facts(answers).app_registration
    assert shown is not None
    assert [(f["subject"], f["usedBy"]) for f in shown["federatedCredentials"]] == [
        (SUBJECT, "this-account"),
        ("m365link:key:x", "other"),
    ]


def test_a_certificate_account_reads_federated_credentials_too_but_needs_none() -> None:
    thumbprint = "AB" * 20
    graph = registration(credential())
    graph["application"] = GraphAnswer(
        status=200,
        body={
            "signInAudience": "AzureADMyOrg",
            "keyCredentials": [{"customKeyIdentifier": thumbprint}],
            "passwordCredentials": [],
        },
    )
    answers = replace(
        BASE, federation=None, thumbprint=thumbprint, certificate_not_after=NOW, graph=graph
    )
    checks = {c.id: c for c in decide(replace(answers, token=TOKEN))}
    assert checks["app_credentials"].status == "pass"
    assert checks["certificate"].to_json()["title"] == "Certificate accepted by Entra ID"
    shown = report_facts(replace(answers, token=TOKEN)).app_registration
    assert shown is not None and shown["federatedCredentials"][0]["usedBy"] == "other"


def test_a_move_to_a_federated_credential_tells_what_to_add_while_it_awaits_the_customer() -> None:
    new_key = "5d1c7a2b-0000-4000-8000-000000000001"
    renewal = Renewal(
        key_id=new_key,
        thumbprint="",
        not_after=None,
        answer=entra(700213),
        federation=Federation(ISSUER, f"m365link:key:{new_key}", AUDIENCE, ""),
        replaces="AB" * 20,
    )
    certificate_account = replace(
        BASE, federation=None, thumbprint="AB" * 20, certificate_not_after=NOW.replace(year=2027)
    )
    expiry = {c.id: c for c in decide(replace(certificate_account, renewal=renewal))}[
        "certificate_expiry"
    ]
    assert f"m365link:key:{new_key}" in expiry.detail
    assert expiry.status == "pass"
