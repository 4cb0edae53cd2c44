"""The app registration as Graph returns it, and the `app_audience` / `app_credentials` checks
decided from it (no network)."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import pytest

from shared.core import app_registration as r
from shared.core.answers import GraphAnswer
from shared.verification.checks.check import Check
from shared.verification.checks.registration import audience_check, credentials_check

NOW = datetime(2026, 11, 26, 17, 0, tzinfo=UTC)
APP = "11111111-2222-3333-4444-555555555555"
MINE = "0123456789ABCDEF0123456789ABCDEF01234567"
OLD = "FEDCBA9876543210FEDCBA9876543210FEDCBA98"
OWNERS = r.Owners(MINE)
QUOTE = (
    "anyone holding that secret can read your tenant as this app; remove it under "
    "Certificates & secrets > Client secrets"
)


def b64(thumbprint: str) -> str:
    return base64.b64encode(bytes.fromhex(thumbprint)).decode()


def certificate(thumbprint: str, end: str = "2027-11-26T17:00:00Z") -> dict[str, object]:
    return {
        "customKeyIdentifier": b64(thumbprint),
        "endDateTime": end,
        "type": "AsymmetricX509Cert",
        "usage": "Verify",
    }


def application(
    *,
    audience: str = "AzureADMyOrg",
    certificates: list[dict[str, object]] | None = None,
    secrets: list[dict[str, object]] | None = None,
) -> GraphAnswer:
    return GraphAnswer(
        status=200,
        body={
            "id": "00000000-aaaa-bbbb-cccc-000000000001",
            "signInAudience": audience,
            "keyCredentials": [certificate(MINE)] if certificates is None else certificates,
            "passwordCredentials": secrets or [],
        },
    )


@pytest.mark.parametrize(
    "credential",
    [
        {"customKeyIdentifier": b64(MINE)},  # Graph's Edm.Binary: the 20 bytes in base64
        {"customKeyIdentifier": MINE.lower()},  # hex, any case
        {"customKeyIdentifier": f" {MINE} "},
    ],
)
def test_a_thumbprint_is_read_as_bytes_from_base64_or_hex(credential: dict[str, str]) -> None:
    assert r.thumbprint_of(credential) == MINE


def test_without_a_usable_identifier_the_certificate_itself_names_it() -> None:
    der = b"not really DER, but bytes all the same"
    expected = hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()
    key = base64.b64encode(der).decode()
    assert r.thumbprint_of({"customKeyIdentifier": None, "key": key}) == expected
    assert r.thumbprint_of({"customKeyIdentifier": "bm90IDIwIGJ5dGVz", "key": key}) == expected
    assert r.thumbprint_of({"customKeyIdentifier": "%%%"}) is None
    assert r.thumbprint_of({}) is None


def test_the_report_lists_each_certificate_with_whose_it_is() -> None:
    rotation, previous = "AA" * 20, "BB" * 20
    body = application(
        certificates=[
            certificate(MINE),
            certificate(rotation),
            certificate(previous),
            certificate(OLD, "2024-01-01T00:00:00.0000000Z"),
        ],
        secrets=[{"hint": "abc", "keyId": "k"}],
    ).body
    owners = r.Owners(MINE.lower(), frozenset({rotation}), frozenset({previous}))
    shown = r.registration_json(r.registration_of(body), owners)
    assert shown == {
        "objectId": "00000000-aaaa-bbbb-cccc-000000000001",
        "signInAudience": "AzureADMyOrg",
        "clientSecrets": 1,
        "certificates": [
            {"thumbprint": MINE, "notAfter": "2027-11-26T17:00:00Z", "usedBy": "this-account"},
            {"thumbprint": rotation, "notAfter": "2027-11-26T17:00:00Z", "usedBy": "rotation"},
            {"thumbprint": previous, "notAfter": "2027-11-26T17:00:00Z", "usedBy": "previous"},
            {"thumbprint": OLD, "notAfter": "2024-01-01T00:00:00Z", "usedBy": "other"},
        ],
        "federatedCredentials": None,  # not read
    }
    assert "abc" not in str(shown)  # a secret's hint is not the report's business


ISSUER = "https://links.example.com/api/oidc"


def federated(subject: str, issuer: str = ISSUER, audiences: object = None) -> dict[str, object]:
    return {
        "name": f"n-{subject[-4:]}",
        "issuer": issuer,
        "subject": subject,
        "audiences": ["api://AzureADTokenExchange"] if audiences is None else audiences,
    }


def test_the_report_lists_each_federated_credential_with_whose_it_is_matched_as_entra_does() -> (
    None
):
    mine, new, old = "m365link:key:a", "m365link:key:b", "m365link:key:c"
    listed = {
        "value": [
            federated(mine),
            federated(new),
            federated(old),
            federated(mine.upper()),  # Entra matches the subject case-sensitively
            federated(mine, ISSUER + "/"),  # and the issuer exactly
            federated(mine, audiences=["api://other"]),
            {"name": 3, "issuer": None, "audiences": "x"},  # odd members: nobody's
        ]
    }
    owners = r.Owners(
        "",
        issuer=ISSUER,
        audience="api://AzureADTokenExchange",
        subject=mine,
        rotation_subjects=frozenset({new}),
        previous_subjects=frozenset({old}),
    )
    shown = r.registration_json(r.registration_of({}), owners, r.federated_of(listed))
    assert [(f["subject"], f["usedBy"]) for f in shown["federatedCredentials"]] == [
        (mine, "this-account"),
        (new, "rotation"),
        (old, "previous"),
        (mine.upper(), "other"),
        (mine, "other"),
        (mine, "other"),
        ("", "other"),
    ]
    assert shown["federatedCredentials"][0] == {
        "name": "n-ey:a",
        "issuer": ISSUER,
        "subject": mine,
        "audiences": ["api://AzureADTokenExchange"],
        "usedBy": "this-account",
    }


def test_a_body_with_odd_members_is_read_without_failing() -> None:
    odd = r.registration_of(
        {"keyCredentials": "x", "passwordCredentials": [1, None], "signInAudience": 3}
    )
    assert odd == r.Registration(None, None, 0, (), ())
    undated = r.registration_of({"keyCredentials": [{"customKeyIdentifier": b64(MINE)}]})
    assert r.expired(undated, NOW) == []


def test_a_single_tenant_registration_passes_app_audience() -> None:
    assert audience_check(application(), APP).status == "pass"


@pytest.mark.parametrize(
    "audience",
    ["AzureADMultipleOrgs", "AzureADandPersonalMicrosoftAccount", "PersonalMicrosoftAccount"],
)
def test_any_other_audience_warns_that_any_tenant_could_sign_in(audience: str) -> None:
    check = audience_check(application(audience=audience), APP)
    assert check.status == "warn"
    assert audience in check.detail and "any tenant could consent" in check.detail
    assert check.remediation and "Single tenant" in check.remediation


def test_an_app_registered_in_another_tenant_warns() -> None:
    check = audience_check(GraphAnswer(status=404, code="Request_ResourceNotFound"), APP)
    assert check.status == "warn" and "another organisation" in check.detail
    assert check.remediation


@pytest.mark.parametrize("check_id", ["app_audience", "app_credentials"])
def test_a_refused_read_is_skipped_with_the_reason_and_a_remediation(check_id: str) -> None:
    denied = GraphAnswer(status=403, code="Authorization_RequestDenied", message="Insufficient.")
    check = decide(check_id, denied)
    assert check.status == "skipped"
    assert "HTTP 403" in check.detail and "Global Reader" in check.detail
    assert check.code == "Authorization_RequestDenied"
    assert check.remediation and "Check it yourself" in check.remediation


@pytest.mark.parametrize("check_id", ["app_audience", "app_credentials"])
@pytest.mark.parametrize("status", [429, 503, None])
def test_a_transient_failure_is_a_retryable_error(check_id: str, status: int | None) -> None:
    check = decide(check_id, GraphAnswer(status=status, transient=True, message="Timeout"))
    assert check.status == "error" and check.to_json()["retryable"] is True


def decide(check_id: str, answer: GraphAnswer) -> Check:
    if check_id == "app_audience":
        return audience_check(answer, APP)
    return credentials_check(answer, OWNERS, NOW)


def test_this_certificate_alone_passes_app_credentials() -> None:
    check = credentials_check(application(), OWNERS, NOW)
    assert check.status == "pass" and MINE in check.detail


def test_a_client_secret_warns_that_anyone_holding_it_reads_the_tenant() -> None:
    secrets = [{"hint": "Q~a", "keyId": "1"}, {"hint": "x7Z", "keyId": "2"}]
    check = credentials_check(application(secrets=secrets), OWNERS, NOW)
    assert check.status == "warn"
    assert QUOTE in check.detail and "2 client secrets" in check.detail
    assert check.remediation and "Client secrets" in check.remediation


def test_expired_certificates_left_on_the_registration_warn_by_thumbprint() -> None:
    stale = [certificate(MINE), certificate(OLD, "2026-11-26T16:59:59Z")]
    check = credentials_check(application(certificates=stale), OWNERS, NOW)
    assert check.status == "warn" and OLD in check.detail and MINE not in check.detail
    assert check.remediation and "expired certificates" in check.remediation
    ends_now = [certificate(MINE), certificate(OLD, "2026-11-26T17:00:00Z")]
    assert credentials_check(application(certificates=ends_now), OWNERS, NOW).status == "pass"


def test_a_registration_without_this_certificate_warns_before_sign_in_breaks() -> None:
    check = credentials_check(application(certificates=[certificate(OLD)]), OWNERS, NOW)
    assert check.status == "warn" and MINE in check.detail and "next sign-in" in check.detail
    assert check.remediation and "Upload certificate" in check.remediation


def test_every_finding_is_said_in_one_warning() -> None:
    check = credentials_check(
        application(
            certificates=[certificate(OLD, "2020-01-01T00:00:00Z")], secrets=[{"hint": "abc"}]
        ),
        OWNERS,
        NOW,
    )
    assert check.status == "warn"
    for part in (MINE, QUOTE, OLD):
        assert part in check.detail
