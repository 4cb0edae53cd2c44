"""Graph `$batch` in the sandbox: limits, ids, order, per-sub-request faults, the request record."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from localdev.sandbox import Sandbox
from localdev.sandbox.admin_client import SandboxAdminError
from tests.sandbox.tenant_setup import Credential, Linked, MsalFactory, token_for

BATCH = "/v1.0/$batch"
ORGANIZATION = "/organization"
REVIEWS = "/identityGovernance/accessReviews/definitions?$top=1"
SELECT = "$select=id,signInAudience,keyCredentials,passwordCredentials"


def application(app_id: str) -> str:
    return f"/applications(appId='{app_id}')?{SELECT}"


def member_of(app_id: str) -> str:
    return f"/servicePrincipals(appId='{app_id}')/memberOf/microsoft.graph.directoryRole"


def verification_batch(linked: Linked) -> list[dict[str, Any]]:
    """The four reads of one verification, as the app sends them."""
    urls = [ORGANIZATION, REVIEWS, application(linked.app_id), member_of(linked.app_id)]
    return [{"id": str(index), "method": "GET", "url": url} for index, url in enumerate(urls, 1)]


def post_batch(
    sb: Sandbox, http: requests.Session, token: str, batch: list[dict[str, Any]] | Any
) -> requests.Response:
    body = {"requests": batch} if isinstance(batch, list) else batch
    return http.post(
        f"{sb.base_url}{BATCH}", json=body, headers={"Authorization": f"Bearer {token}"}
    )


def by_id(response: requests.Response) -> dict[str, dict[str, Any]]:
    assert response.status_code == 200, response.text
    return {item["id"]: item for item in response.json()["responses"]}


def graph_error_code(response: requests.Response, status: int) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"] and error["innerError"]["request-id"]
    code: str = error["code"]
    return code


def test_each_sub_request_answers_like_the_standalone_get(
    sb: Sandbox, http: requests.Session, linked: Linked, graph_token: str
) -> None:
    answers = by_id(post_batch(sb, http, graph_token, verification_batch(linked)))
    assert sorted(answers) == ["1", "2", "3", "4"]
    for item in answers.values():
        assert item["status"] == 200, item
        assert item["headers"]["Content-Type"].startswith("application/json")
    headers = {"Authorization": f"Bearer {graph_token}"}
    for request_id, url in (("1", ORGANIZATION), ("4", member_of(linked.app_id))):
        alone = http.get(f"{sb.base_url}/v1.0{url}", headers=headers).json()
        assert answers[request_id]["body"]["value"] == alone["value"]
    assert answers["2"]["body"]["value"][0]["displayName"] == "Quarterly guest access review 1"
    assert answers["3"]["body"]["signInAudience"] == "AzureADMyOrg"


def test_twenty_requests_are_answered_and_twenty_one_refused(
    sb: Sandbox, http: requests.Session, linked: Linked, graph_token: str
) -> None:
    twenty = [{"id": str(i), "method": "GET", "url": ORGANIZATION} for i in range(20)]
    answers = by_id(post_batch(sb, http, graph_token, twenty))
    assert len(answers) == 20
    assert {item["status"] for item in answers.values()} == {200}

    twenty_one = [*twenty, {"id": "20", "method": "GET", "url": ORGANIZATION}]
    refused = post_batch(sb, http, graph_token, twenty_one)
    assert graph_error_code(refused, 400) == "BadRequest"
    assert "at most 20" in refused.json()["error"]["message"]


def test_a_duplicate_id_fails_the_whole_batch(
    sb: Sandbox, http: requests.Session, linked: Linked, graph_token: str
) -> None:
    sb.admin.reset_requests()
    batch = verification_batch(linked)
    batch[2]["id"] = "1"
    refused = post_batch(sb, http, graph_token, batch)
    assert graph_error_code(refused, 400) == "BadRequest"
    assert "'1'" in refused.json()["error"]["message"]
    [record] = sb.admin.requests()["value"]
    assert record["path"] == BATCH and record["status"] == 400
    assert "batch" not in record  # nothing inside was run


@pytest.mark.parametrize(
    "body",
    [
        {"requests": []},
        {"value": []},
        [1, 2],
        {"requests": [{"id": "1", "method": "GET", "url": "https://graph.microsoft.com/v1.0/me"}]},
        {"requests": [{"id": "1", "method": "POST", "url": "/organization", "body": {}}]},
        {"requests": [{"id": "1", "method": "GET", "url": "/organization", "dependsOn": ["9"]}]},
        {"requests": [{"id": "1", "method": "GET", "url": "/organization", "dependsOn": ["1"]}]},
        {
            "requests": [
                {"id": "1", "method": "GET", "url": "/organization", "dependsOn": ["2"]},
                {"id": "2", "method": "GET", "url": "/organization"},
            ]
        },
    ],
    ids=[
        "empty",
        "no-requests",
        "not-an-object",
        "absolute-url",
        "body-no-type",
        "bad-depends",
        "self-depends",
        "later-depends",
    ],
)
def test_a_malformed_batch_is_refused(
    sb: Sandbox, http: requests.Session, linked: Linked, graph_token: str, body: Any
) -> None:
    response = http.post(
        f"{sb.base_url}{BATCH}", json=body, headers={"Authorization": f"Bearer {graph_token}"}
    )
    assert graph_error_code(response, 400) == "BadRequest"


def test_sub_responses_come_back_in_the_order_the_sandbox_is_told(
    sb: Sandbox, http: requests.Session, linked: Linked, graph_token: str
) -> None:
    def order() -> list[str]:
        response = post_batch(sb, http, graph_token, verification_batch(linked))
        assert response.status_code == 200
        return [item["id"] for item in response.json()["responses"]]

    assert sb.admin.graph_batch_order() == "request"
    assert order() == ["1", "2", "3", "4"]
    sb.admin.set_graph_batch_order("reverse")
    assert order() == ["4", "3", "2", "1"]
    sb.admin.set_graph_batch_order("shuffle")
    assert sorted(order()) == ["1", "2", "3", "4"]
    sb.reset()
    assert sb.admin.graph_batch_order() == "request"


def test_a_throttled_sub_request_answers_429_with_its_own_retry_after_inside_a_200(
    sb: Sandbox, http: requests.Session, linked: Linked, graph_token: str
) -> None:
    sb.admin.add_fault("graph", 429, path="/v1.0/organization", retry_after=7, count=1)
    sb.admin.reset_requests()
    answers = by_id(post_batch(sb, http, graph_token, verification_batch(linked)))
    throttled = answers["1"]
    assert throttled["status"] == 429
    assert throttled["headers"]["Retry-After"] == "7"
    assert throttled["body"]["error"]["code"] == "TooManyRequests"
    assert [answers[i]["status"] for i in ("2", "3", "4")] == [200, 200, 200]
    for request_id in ("2", "3", "4"):
        assert "Retry-After" not in answers[request_id]["headers"]

    # Retried alone, it succeeds (the fault had one use); the record shows what each batch held.
    retry = by_id(post_batch(sb, http, graph_token, [verification_batch(linked)[0]]))
    assert retry["1"]["status"] == 200
    record = sb.admin.requests()
    assert record["counts"]["graph"] == 2
    first, second = record["value"]
    assert [(i["id"], i["status"], i["fault"]) for i in first["batch"]] == [
        ("1", 429, True),
        ("2", 200, False),
        ("3", 200, False),
        ("4", 200, False),
    ]
    assert first["batch"][0]["error"] == "TooManyRequests"
    assert [(i["path"], i["status"]) for i in second["batch"]] == [("/v1.0/organization", 200)]


def test_the_outer_batch_can_be_faulted_by_its_path(
    sb: Sandbox, http: requests.Session, linked: Linked, graph_token: str
) -> None:
    sb.admin.add_fault("graph", 503, path="/v1.0/$batch", retry_after=2, count=1)
    sb.admin.reset_requests()
    failed = post_batch(sb, http, graph_token, verification_batch(linked))
    assert graph_error_code(failed, 503) == "serviceNotAvailable"
    assert failed.headers["Retry-After"] == "2"
    [record] = sb.admin.requests()["value"]
    assert record["status"] == 503 and "batch" not in record
    assert post_batch(sb, http, graph_token, verification_batch(linked)).status_code == 200


def test_the_record_counts_a_batch_as_one_graph_request_and_lists_its_sub_requests(
    sb: Sandbox, http: requests.Session, linked: Linked, graph_token: str
) -> None:
    sb.admin.reset_requests()
    post_batch(sb, http, graph_token, verification_batch(linked))
    record = sb.admin.requests()
    assert record["counts"]["graph"] == 1
    [entry] = record["value"]
    assert entry["target"] == "graph" and entry["path"] == BATCH and entry["status"] == 200
    assert [(i["method"], i["path"]) for i in entry["batch"]] == [
        ("GET", "/v1.0/organization"),
        ("GET", "/v1.0/identityGovernance/accessReviews/definitions"),
        ("GET", f"/v1.0/applications(appId='{linked.app_id}')"),
        (
            "GET",
            f"/v1.0/servicePrincipals(appId='{linked.app_id}')/memberOf/"
            "microsoft.graph.directoryRole",
        ),
    ]
    assert entry["batch"][1]["query"] == "$top=1"
    assert entry["batch"][2]["query"] == SELECT


def test_each_sub_request_is_authorized_on_its_own(
    sb: Sandbox,
    http: requests.Session,
    msal_app: MsalFactory,
    linked: Linked,
    credential: Credential,
) -> None:
    sb.admin.set_directory_roles(linked.tenant_id, linked.app_id, ["Security Reader"])
    token = token_for(msal_app, linked, credential)
    answers = by_id(post_batch(sb, http, token, verification_batch(linked)))
    assert answers["1"]["status"] == 403
    assert answers["1"]["body"]["error"]["code"] == "Authorization_RequestDenied"
    assert answers["2"]["status"] == 200  # AccessReview.Read.All is consented
    assert answers["3"]["status"] == 403 and answers["4"]["status"] == 403


def test_a_batch_needs_a_valid_bearer_token(
    sb: Sandbox, http: requests.Session, linked: Linked
) -> None:
    response = http.post(f"{sb.base_url}{BATCH}", json={"requests": verification_batch(linked)})
    assert graph_error_code(response, 401) == "InvalidAuthenticationToken"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    got = http.get(f"{sb.base_url}{BATCH}")
    assert got.status_code == 405


def test_a_failed_dependency_answers_424(
    sb: Sandbox, http: requests.Session, linked: Linked, graph_token: str
) -> None:
    batch = [
        {"id": "a", "method": "GET", "url": "/nothing"},
        {"id": "b", "method": "GET", "url": ORGANIZATION, "dependsOn": ["a"]},
        {"id": "c", "method": "GET", "url": ORGANIZATION},
    ]
    answers = by_id(post_batch(sb, http, graph_token, batch))
    assert answers["a"]["status"] == 400
    assert answers["b"]["status"] == 424
    assert answers["c"]["status"] == 200


def test_the_admin_api_refuses_an_unknown_batch_order(sb: Sandbox) -> None:
    with pytest.raises(SandboxAdminError) as refused:
        sb.admin.set_graph_batch_order("random")
    assert refused.value.status == 400
    assert sb.admin.graph_batch_order() == "request"


def test_a_sub_request_fault_can_delay_only_that_sub_request(
    sb: Sandbox, http: requests.Session, linked: Linked, graph_token: str
) -> None:
    sb.admin.add_fault("graph", path="/v1.0/organization", latency_ms=300, count=1)
    sb.admin.reset_requests()
    answers = by_id(post_batch(sb, http, graph_token, verification_batch(linked)))
    assert {item["status"] for item in answers.values()} == {200}
    [entry] = sb.admin.requests()["value"]
    assert entry["durationMs"] >= 300
    assert not any(item["fault"] for item in entry["batch"])  # a delay is not a failure
