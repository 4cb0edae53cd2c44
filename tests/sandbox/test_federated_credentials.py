"""Federated identity credentials on an app registration: the admin API's rules and Graph's routes.

Entra's rules (FACTS §12): at most 20 per application, names `^[A-Za-z0-9][A-Za-z0-9_-]{2,119}$`
unique in any case, subject ≤ 600 characters, issuer a URL, exactly one audience. Graph lists them
to whoever may read the application and creates them only for an application writer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from localdev.sandbox import Sandbox
from localdev.sandbox.admin_client import SandboxAdminError
from tests.sandbox.oidc_issuer import AUDIENCE, TestIssuer
from tests.sandbox.tenant_setup import ASSERTION_TYPE, GRAPH_SCOPE

SUBJECT = "m365link:owner-1:key-7f3a"
Token = Callable[[], str]


@pytest.fixture
def issuer() -> Iterator[TestIssuer]:
    test_issuer = TestIssuer()
    yield test_issuer
    test_issuer.close()


def body(test_issuer: TestIssuer, **changes: Any) -> dict[str, Any]:
    return {
        "name": "m365-link-fabrikam",
        "issuer": test_issuer.issuer,
        "subject": SUBJECT,
        "audiences": [AUDIENCE],
        "description": "M365 link",
        **changes,
    }


@pytest.fixture
def app(sb: Sandbox, issuer: TestIssuer) -> tuple[str, str]:
    """A tenant and an app reading with Global Reader, trusting the test issuer."""
    tid = sb.admin.create_tenant("Fabrikam")["tenantId"]
    app_id = sb.admin.create_application(tid, "Portal reader")["appId"]
    sb.admin.set_permissions(tid, app_id, ["AccessReview.Read.All"])
    sb.admin.set_directory_roles(tid, app_id, ["Global Reader"])
    sb.admin.add_federated_credential(tid, app_id, body(issuer))
    return tid, app_id


@pytest.fixture
def token(sb: Sandbox, http: requests.Session, app: tuple[str, str], issuer: TestIssuer) -> Token:
    """A fresh Graph token of the app, got with its federated credential."""
    kid = issuer.publish()

    def get() -> str:
        tid, app_id = app
        response = http.post(
            f"{sb.base_url}/{tid}/oauth2/v2.0/token",
            data={
                "client_id": app_id,
                "scope": GRAPH_SCOPE,
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": issuer.assertion(SUBJECT, kid=kid),
            },
        )
        assert response.status_code == 200, response.json()
        return str(response.json()["access_token"])

    return get


def graph(
    sb: Sandbox, http: requests.Session, token: str, method: str, path: str, json: Any = None
) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return http.request(method, f"{sb.base_url}/v1.0/{path}", headers=headers, json=json)


# --- admin API ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"name": "ab"}, "name"),
        ({"name": "-starts-with-dash"}, "name"),
        ({"name": "has space"}, "name"),
        ({"name": "x" * 121}, "name"),
        ({"subject": "s" * 601}, "subject"),
        ({"issuer": "not a url"}, "issuer"),
        ({"audiences": []}, "audiences"),
        ({"audiences": [AUDIENCE, "api://other"]}, "audiences"),
        ({"audiences": AUDIENCE}, "audiences"),
        ({"colour": "blue"}, "unknown"),
    ],
)
def test_the_admin_api_refuses_what_entra_refuses(
    sb: Sandbox, app: tuple[str, str], issuer: TestIssuer, changes: dict[str, Any], says: str
) -> None:
    with pytest.raises(SandboxAdminError) as refused:
        sb.admin.add_federated_credential(*app, body(issuer, **{"name": "another", **changes}))
    assert refused.value.status == 400
    assert says in refused.value.message
    assert len(sb.admin.federated_credentials(*app)) == 1


def test_names_are_unique_per_application_in_any_case(
    sb: Sandbox, app: tuple[str, str], issuer: TestIssuer
) -> None:
    with pytest.raises(SandboxAdminError) as refused:
        sb.admin.add_federated_credential(*app, body(issuer, name="M365-Link-Fabrikam"))
    assert refused.value.status == 400 and "already exists" in refused.value.message


def test_an_application_holds_at_most_twenty(
    sb: Sandbox, app: tuple[str, str], issuer: TestIssuer
) -> None:
    for index in range(19):
        sb.admin.add_federated_credential(*app, body(issuer, name=f"credential-{index}"))
    assert len(sb.admin.federated_credentials(*app)) == 20
    with pytest.raises(SandboxAdminError) as refused:
        sb.admin.add_federated_credential(*app, body(issuer, name="credential-21"))
    assert refused.value.status == 400 and "at most 20" in refused.value.message


def test_update_keeps_the_rules_and_delete_removes(
    sb: Sandbox, app: tuple[str, str], issuer: TestIssuer
) -> None:
    [stored] = sb.admin.federated_credentials(*app)
    updated = sb.admin.update_federated_credential(*app, stored["id"], {"subject": "Other"})
    assert (updated["subject"], updated["name"]) == ("Other", stored["name"])
    with pytest.raises(SandboxAdminError) as refused:
        sb.admin.update_federated_credential(*app, stored["name"], {"name": "renamed"})
    assert refused.value.status == 400
    sb.admin.delete_federated_credential(*app, stored["name"].upper())
    assert sb.admin.federated_credentials(*app) == []
    with pytest.raises(SandboxAdminError) as missing:
        sb.admin.delete_federated_credential(*app, stored["id"])
    assert missing.value.status == 404
    assert sb.admin.get_application(*app)["federatedIdentityCredentials"] == []


# --- Graph --------------------------------------------------------------------------------------
def test_graph_lists_them_by_app_id_and_by_object_id(
    sb: Sandbox, http: requests.Session, app: tuple[str, str], issuer: TestIssuer, token: Token
) -> None:
    tid, app_id = app
    object_id = sb.admin.get_application(tid, app_id)["objectId"]
    access = token()
    for path in (
        f"applications(appId='{app_id}')/federatedIdentityCredentials",
        f"applications/{object_id}/federatedIdentityCredentials",
    ):
        response = graph(sb, http, access, "GET", path)
        assert response.status_code == 200, response.json()
        answer = response.json()
        assert answer["@odata.context"].endswith(
            f"$metadata#applications('{object_id}')/federatedIdentityCredentials"
        )
        [credential] = answer["value"]
        assert set(credential) == {"id", "name", "issuer", "subject", "audiences", "description"}
        assert (credential["issuer"], credential["subject"], credential["audiences"]) == (
            issuer.issuer,
            SUBJECT,
            [AUDIENCE],
        )


def test_graph_lists_them_inside_a_batch(
    sb: Sandbox, http: requests.Session, app: tuple[str, str], token: Token
) -> None:
    url = f"/applications(appId='{app[1]}')/federatedIdentityCredentials"
    batch = {
        "requests": [
            {"id": "1", "method": "GET", "url": "/organization"},
            {"id": "2", "method": "GET", "url": url},
        ]
    }
    response = graph(sb, http, token(), "POST", "$batch", json=batch)
    answers = {item["id"]: item for item in response.json()["responses"]}
    assert answers["2"]["status"] == 200
    assert [c["subject"] for c in answers["2"]["body"]["value"]] == [SUBJECT]
    [record] = [r for r in sb.admin.requests()["value"] if r["target"] == "graph"]
    assert record["batch"][1]["path"] == f"/v1.0{url}" and record["batch"][1]["status"] == 200


@pytest.mark.parametrize("how", ["no role", "not readable"])
def test_graph_refuses_a_caller_that_may_not_read_the_application(
    sb: Sandbox, http: requests.Session, app: tuple[str, str], token: Token, how: str
) -> None:
    if how == "no role":
        sb.admin.set_directory_roles(*app, [])
    else:
        sb.admin.update_tenant(app[0], application_readable=False)
    path = f"applications(appId='{app[1]}')/federatedIdentityCredentials"
    response = graph(sb, http, token(), "GET", path)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "Authorization_RequestDenied"
    batch = {"requests": [{"id": "1", "method": "GET", "url": f"/{path}"}]}
    [answer] = graph(sb, http, token(), "POST", "$batch", json=batch).json()["responses"]
    assert answer["status"] == 403


def test_graph_faults_hit_the_route(
    sb: Sandbox, http: requests.Session, app: tuple[str, str], token: Token
) -> None:
    access = token()
    sb.admin.add_fault("graph", 503, path="federatedIdentityCredentials", retry_after=2)
    path = f"applications(appId='{app[1]}')/federatedIdentityCredentials"
    response = graph(sb, http, access, "GET", path)
    assert (response.status_code, response.headers["Retry-After"]) == (503, "2")
    assert sb.admin.requests()["value"][-1]["status"] == 503


def test_an_application_cannot_add_one_to_itself(
    sb: Sandbox, http: requests.Session, app: tuple[str, str], issuer: TestIssuer, token: Token
) -> None:
    path = f"applications(appId='{app[1]}')/federatedIdentityCredentials"
    response = graph(sb, http, token(), "POST", path, json=body(issuer, name="second"))
    assert response.status_code == 403
    assert len(sb.admin.federated_credentials(*app)) == 1


def test_an_application_writer_adds_one_with_entras_rules(
    sb: Sandbox, http: requests.Session, app: tuple[str, str], issuer: TestIssuer, token: Token
) -> None:
    tid = app[0]
    target = sb.admin.create_application(tid, "Customer app")
    sb.admin.set_permissions(*app, ["Application.ReadWrite.All"])
    path = f"applications/{target['objectId']}/federatedIdentityCredentials"
    access = token()
    created = graph(sb, http, access, "POST", path, json=body(issuer))
    assert created.status_code == 201, created.json()
    assert created.headers["Location"].endswith(f"{path}/{created.json()['id']}")
    assert created.json()["subject"] == SUBJECT
    duplicate = graph(sb, http, access, "POST", path, json=body(issuer, name="M365-LINK-FABRIKAM"))
    assert duplicate.status_code == 400
    assert duplicate.json()["error"]["code"] == "Request_BadRequest"
    listed = sb.admin.federated_credentials(tid, target["appId"])
    assert [c["id"] for c in listed] == [created.json()["id"]]
