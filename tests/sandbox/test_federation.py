"""The sandbox's token endpoint takes federated assertions only as Entra does (FACTS §12).

A loopback test issuer (oidc_issuer.py) publishes keys; the sandbox fetches them over real HTTP,
caches them per issuer, and answers Entra's codes for every mismatch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import msal
import pytest
import requests

from localdev.sandbox import Sandbox
from tests.sandbox.oidc_issuer import AUDIENCE, TestIssuer
from tests.sandbox.tenant_setup import ASSERTION_TYPE, GRAPH_SCOPE

SUBJECT = "m365link:owner-1:key-7f3a"
Post = Callable[..., requests.Response]


@pytest.fixture
def issuer() -> Iterator[TestIssuer]:
    test_issuer = TestIssuer()
    yield test_issuer
    test_issuer.close()


@pytest.fixture
def kid(issuer: TestIssuer) -> str:
    return issuer.publish()


@pytest.fixture
def app(sb: Sandbox) -> tuple[str, str]:
    """A tenant and an app set up as the linking guide says, with no certificate."""
    tid = sb.admin.create_tenant("Fabrikam")["tenantId"]
    app_id = sb.admin.create_application(tid, "Portal reader")["appId"]
    sb.admin.set_permissions(tid, app_id, ["AccessReview.Read.All"])
    sb.admin.set_directory_roles(tid, app_id, ["Global Reader"])
    return tid, app_id


def download(issuer: TestIssuer, name: str = "m365-link-fabrikam") -> dict[str, Any]:
    """The JSON the app offers for download (API.md `format=json`)."""
    return {
        "name": name,
        "issuer": issuer.issuer,
        "subject": SUBJECT,
        "audiences": [AUDIENCE],
        "description": "M365 link",
    }


@pytest.fixture
def trusted(sb: Sandbox, app: tuple[str, str], issuer: TestIssuer) -> dict[str, Any]:
    return sb.admin.add_federated_credential(*app, download(issuer))


@pytest.fixture
def post(sb: Sandbox, http: requests.Session, app: tuple[str, str]) -> Post:
    def send(assertion: str) -> requests.Response:
        tid, app_id = app
        return http.post(
            f"{sb.base_url}/{tid}/oauth2/v2.0/token",
            data={
                "client_id": app_id,
                "scope": GRAPH_SCOPE,
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion,
            },
        )

    return send


def entra_code(response: requests.Response, status: int, error: str = "invalid_client") -> int:
    body = response.json()
    assert response.status_code == status, body
    assert body["error"] == error
    [code] = body["error_codes"]
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    return int(code)


def test_a_matching_credential_gets_the_token_a_certificate_would(
    sb: Sandbox,
    app: tuple[str, str],
    trusted: dict[str, Any],
    issuer: TestIssuer,
    kid: str,
    post: Post,
) -> None:
    response = post(issuer.assertion(SUBJECT, kid=kid))
    assert response.status_code == 200, response.json()
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    tid, app_id = app
    assert (claims["tid"], claims["appid"], claims["idtyp"]) == (tid, app_id, "app")
    assert claims["roles"] == ["AccessReview.Read.All"]
    assert "f2ef992c-3afb-46b9-b7cf-a126ee74c451" in claims["wids"]


def test_the_accepted_assertion_is_readable_with_its_header_and_claims(
    sb: Sandbox, trusted: dict[str, Any], issuer: TestIssuer, kid: str, post: Post
) -> None:
    with pytest.raises(Exception, match="404"):
        sb.admin.last_federated_assertion()
    assertion = issuer.assertion(SUBJECT, kid=kid)
    assert post(assertion).status_code == 200
    accepted = sb.admin.last_federated_assertion()
    assert accepted["header"] == {"alg": "RS256", "kid": kid, "typ": "JWT"}
    assert accepted["claims"] == jwt.decode(assertion, options={"verify_signature": False})
    assert set(accepted["claims"]) == {"iss", "sub", "aud", "iat", "nbf", "exp", "jti"}
    assert accepted["credential"]["id"] == trusted["id"]


def test_msal_with_a_callable_assertion_takes_the_same_path(
    sb: Sandbox,
    http: requests.Session,
    app: tuple[str, str],
    trusted: dict[str, Any],
    issuer: TestIssuer,
    kid: str,
) -> None:
    tid, app_id = app
    client = msal.ConfidentialClientApplication(
        app_id,
        client_credential={"client_assertion": lambda: issuer.assertion(SUBJECT, kid=kid)},
        authority=f"{sb.base_url}/{tid}",
        instance_discovery=False,
        http_client=http,
    )
    result = client.acquire_token_for_client([GRAPH_SCOPE])
    assert "access_token" in result, result


def test_an_app_without_federated_credentials_is_aadsts70021(
    issuer: TestIssuer, kid: str, post: Post
) -> None:
    response = post(issuer.assertion(SUBJECT, kid=kid))
    assert entra_code(response, 400, "invalid_request") == 70021
    assert issuer.hits == []  # Entra matches before it fetches anything


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"issuer": "{issuer}/"}, 700211),
        ({"subject": SUBJECT.upper()}, 7002138),
        ({"subject": "m365link:owner-2:key-0000"}, 700213),
        ({"audiences": ["api://AzureADTokenExchange/"]}, 700212),
    ],
)
def test_a_credential_that_differs_at_all_is_refused_with_its_code(
    sb: Sandbox,
    app: tuple[str, str],
    trusted: dict[str, Any],
    issuer: TestIssuer,
    kid: str,
    post: Post,
    change: dict[str, Any],
    code: int,
) -> None:
    assert post(issuer.assertion(SUBJECT, kid=kid)).status_code == 200
    if "issuer" in change:
        change = {"issuer": change["issuer"].format(issuer=issuer.issuer)}
    sb.admin.update_federated_credential(*app, trusted["name"], change)
    assert entra_code(post(issuer.assertion(SUBJECT, kid=kid)), 401) == code


def test_an_unreachable_issuer_is_aadsts50166(
    sb: Sandbox, app: tuple[str, str], issuer: TestIssuer, kid: str, post: Post
) -> None:
    gone = "http://127.0.0.1:9/oidc"  # discard port: nothing listens
    sb.admin.add_federated_credential(*app, {**download(issuer), "issuer": gone})
    response = post(issuer.assertion(SUBJECT, kid=kid, claims={"iss": gone}))
    assert entra_code(response, 401) == 50166
    assert "External OIDC endpoint" in response.json()["error_description"]


def test_a_key_published_after_the_cache_filled_is_unknown_until_flushed(
    sb: Sandbox, trusted: dict[str, Any], issuer: TestIssuer, kid: str, post: Post
) -> None:
    assert post(issuer.assertion(SUBJECT, kid=kid)).status_code == 200
    new_kid = issuer.publish()
    response = post(issuer.assertion(SUBJECT, kid=new_kid))
    assert entra_code(response, 401) == 7000272
    assert new_kid in response.json()["error_description"]
    assert sb.admin.federation()["fetches"] == 1
    sb.admin.flush_issuer_keys(issuer.issuer)
    assert post(issuer.assertion(SUBJECT, kid=new_kid)).status_code == 200
    assert sb.admin.federation()["fetches"] == 2


def test_a_key_published_after_the_cache_filled_is_seen_once_the_ttl_passed(
    sb: Sandbox, trusted: dict[str, Any], issuer: TestIssuer, kid: str, post: Post
) -> None:
    sb.admin.set_issuer_key_ttl(1)
    assert post(issuer.assertion(SUBJECT, kid=kid)).status_code == 200
    new_kid = issuer.publish()
    assert entra_code(post(issuer.assertion(SUBJECT, kid=new_kid)), 401) == 7000272
    time.sleep(1.1)
    assert post(issuer.assertion(SUBJECT, kid=new_kid)).status_code == 200


def test_the_cache_ttl_is_a_day_by_default_and_reset_restores_it(sb: Sandbox) -> None:
    assert sb.admin.federation()["keyCacheTtlSeconds"] == 86400
    sb.admin.set_issuer_key_ttl(5)
    sb.reset()
    assert sb.admin.federation() == {
        "keyCacheTtlSeconds": 86400,
        "issuers": [],
        "fetches": 0,
        "lastAccepted": None,
    }


# Times are offsets from when the test runs, not from collection (a full run collects this file
# many minutes before it runs it).
@pytest.mark.parametrize(
    ("claims", "code"),
    [
        ({"exp": -900, "nbf": -1500}, 700024),
        ({"nbf": 900, "exp": 1500}, 700024),
        ({"jti": None}, 50027),
    ],
)
def test_an_expired_early_or_jti_less_assertion_is_refused(
    sb: Sandbox,
    trusted: dict[str, Any],
    issuer: TestIssuer,
    kid: str,
    post: Post,
    claims: dict[str, Any],
    code: int,
) -> None:
    now = int(time.time())
    at = {k: now + v if k in ("exp", "nbf") else v for k, v in claims.items()}
    response = post(issuer.assertion(SUBJECT, kid=kid, claims=at))
    assert entra_code(response, 400 if code == 50027 else 401) == code
    with pytest.raises(Exception, match="404"):
        sb.admin.last_federated_assertion()


def test_a_signature_by_another_key_under_a_published_kid_is_refused(
    trusted: dict[str, Any], issuer: TestIssuer, kid: str, post: Post
) -> None:
    impostor = TestIssuer()
    try:
        other_key = impostor.keys[impostor.publish()]
    finally:
        impostor.close()
    response = post(issuer.assertion(SUBJECT, kid=kid, key=other_key))
    assert entra_code(response, 401) == 7000274
