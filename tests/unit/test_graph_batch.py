"""One Graph `$batch` for several reads: sub-responses matched by id in any order, a throttled
sub-request retried alone after its own Retry-After, never past the deadline; a failed batch
fails each of its sub-requests without retries here.

Graph is stood in for at the HTTP boundary (a requests transport adapter that answers each batch
from a script and records what each batch held), so the client's own code runs unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter

from shared.adapters.http.outbound import RETRY_AFTER_CAP
from shared.adapters.tenant import graph_batch
from shared.adapters.tenant.client import TenantClient, graph_answers
from shared.core.answers import GraphAnswer
from shared.support.deadline import deadline

GRAPH = "https://graph.example.test"
READS = {
    "organization": "/organization",
    "access_reviews": "/identityGovernance/accessReviews/definitions?$top=1",
    "application": "/applications(appId='x')?$select=id,signInAudience",
}
Responder = Callable[[list[dict[str, Any]], int], Any]


def ok(request: dict[str, Any]) -> dict[str, Any]:
    return {"id": request["id"], "status": 200, "headers": {}, "body": {"url": request["url"]}}


def throttled(request: dict[str, Any], retry_after: str | None = "2") -> dict[str, Any]:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    body = {"error": {"code": "TooManyRequests", "message": "Slow down.\nrequest-id: 1"}}
    return {"id": request["id"], "status": 429, "headers": headers, "body": body}


class _Batch(BaseAdapter):
    """Answers `POST /v1.0/$batch` with `respond(requests, batch_number)`: a list of
    sub-responses (the body `{"responses": …}`), a `requests.Response`, or an exception."""

    def __init__(self, respond: Responder) -> None:
        super().__init__()
        self.respond = respond
        self.batches: list[list[dict[str, Any]]] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        assert request.url == f"{GRAPH}/v1.0/$batch" and request.method == "POST"
        assert request.headers["Authorization"] == "Bearer token"
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body)
        sub_requests = json.loads(body)["requests"]
        self.batches.append(sub_requests)
        answer = self.respond(sub_requests, len(self.batches))
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, requests.Response):
            return answer
        response = requests.Response()
        response.status_code = 200
        response._content = json.dumps({"responses": answer}).encode()
        response.headers["Content-Type"] = "application/json"
        response.request = request
        return response

    def close(self) -> None:
        pass

    def urls(self, number: int) -> list[str]:
        return [r["url"] for r in self.batches[number - 1]]


def client_for(respond: Responder) -> tuple[requests.Session, _Batch, list[float]]:
    batch = _Batch(respond)
    session = requests.Session()
    session.mount("https://", batch)
    return session, batch, []


def read(session: requests.Session, slept: list[float]) -> dict[str, GraphAnswer]:
    """The reads as `TenantClient.graph_batch` answers them, waits recorded instead of slept."""
    return graph_answers(graph_batch.send(session, GRAPH, "token", READS, sleep=slept.append))


def test_sub_responses_in_any_order_are_matched_by_id() -> None:
    client, batch, slept = client_for(lambda subs, _: [ok(r) for r in reversed(subs)])
    answers = read(client, slept)
    assert {name: a.body["url"] for name, a in answers.items()} == READS
    assert len(batch.batches) == 1 and slept == []
    assert [r["method"] for r in batch.batches[0]] == ["GET"] * 3
    assert len({r["id"] for r in batch.batches[0]}) == 3


def test_a_throttled_sub_request_is_retried_alone_after_its_own_retry_after() -> None:
    def respond(subs: list[dict[str, Any]], number: int) -> list[dict[str, Any]]:
        return [throttled(r) if number == 1 and "organization" in r["url"] else ok(r) for r in subs]

    client, batch, slept = client_for(respond)
    answers = read(client, slept)
    assert all(a.ok for a in answers.values())
    assert batch.urls(2) == ["/organization"]  # the others are not sent again
    assert slept == [2.0]


def test_the_longest_retry_after_is_honoured_and_capped() -> None:
    def respond(subs: list[dict[str, Any]], number: int) -> list[dict[str, Any]]:
        waits = {"/organization": "3", "/applications(appId='x')?$select=id,signInAudience": "1"}
        if number == 1:
            return [throttled(r, waits[r["url"]]) if r["url"] in waits else ok(r) for r in subs]
        if number == 2:
            return [throttled(r, "86400") for r in subs]
        return [ok(r) for r in subs]

    client, batch, slept = client_for(respond)
    answers = read(client, slept)
    assert all(a.ok for a in answers.values())
    assert sorted(batch.urls(2)) == sorted(["/organization", READS["application"]])
    assert slept == [3.0, RETRY_AFTER_CAP]


def test_a_retry_after_past_the_deadline_is_not_waited_for() -> None:
    client, batch, slept = client_for(
        lambda subs, _: [throttled(r, "30") if "organization" in r["url"] else ok(r) for r in subs]
    )
    with deadline(5):
        answers = read(client, slept)
    assert len(batch.batches) == 1 and slept == []
    throttled_answer = answers["organization"]
    assert throttled_answer.status == 429 and throttled_answer.transient
    assert throttled_answer.code == "TooManyRequests" and throttled_answer.message == "Slow down."
    assert answers["access_reviews"].ok and answers["application"].ok


def test_a_sub_request_that_keeps_failing_is_retried_a_bounded_number_of_times() -> None:
    def respond(subs: list[dict[str, Any]], _: int) -> list[dict[str, Any]]:
        down = {"code": "serviceNotAvailable", "message": "Down."}
        return [
            {"id": r["id"], "status": 503, "body": {"error": down}}
            if "accessReviews" in r["url"]
            else ok(r)
            for r in subs
        ]

    client, batch, slept = client_for(respond)
    answers = read(client, slept)
    assert len(batch.batches) == 1 + graph_batch.SUB_RETRIES
    assert all(len(b) == 1 for b in batch.batches[1:])
    assert slept == [0.5, 1.0, 2.0]  # backoff without Retry-After
    assert answers["access_reviews"].status == 503 and answers["access_reviews"].transient
    assert answers["organization"].ok


def test_a_refusal_inside_the_batch_is_not_retried() -> None:
    denied = {"error": {"code": "Authorization_RequestDenied", "message": "Insufficient."}}
    client, batch, slept = client_for(
        lambda subs, _: [{"id": r["id"], "status": 403, "body": denied} for r in subs]
    )
    answers = read(client, slept)
    assert len(batch.batches) == 1 and slept == []
    assert {a.code for a in answers.values()} == {"Authorization_RequestDenied"}
    assert not any(a.transient for a in answers.values())


def _outer(status: int, body: dict[str, Any]) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    return response


@pytest.mark.parametrize(
    ("answer", "status", "transient"),
    [
        (_outer(503, {"error": {"code": "serviceNotAvailable"}}), 503, True),
        (_outer(429, {"error": {"code": "TooManyRequests"}}), 429, True),
        (_outer(401, {"error": {"code": "InvalidAuthenticationToken"}}), 401, False),
        (_outer(200, {"value": []}), None, True),  # a 200 that is no batch answer
        (requests.ConnectionError("refused"), None, True),
    ],
)
def test_a_failed_batch_fails_each_sub_request_and_is_not_retried_here(
    answer: Any, status: int | None, transient: bool
) -> None:
    client, batch, slept = client_for(lambda subs, _: answer)
    answers = read(client, slept)
    assert len(batch.batches) == 1 and slept == []  # the session's own retries are the bound
    assert set(answers) == set(READS)
    for got in answers.values():
        assert (got.status, got.transient, got.ok) == (status, transient, False)


def test_a_sub_request_the_answer_leaves_out_is_a_transient_failure() -> None:
    client, _, slept = client_for(
        lambda subs, _: (
            [ok(r) for r in subs if "organization" not in r["url"]]
            + [{"id": "999", "status": 200}, "junk"]
        )
    )
    answers = read(client, slept)
    assert answers["organization"].status is None and answers["organization"].transient
    assert "no response" in (answers["organization"].message or "")
    assert answers["application"].ok


def test_a_batch_holds_one_to_twenty_requests() -> None:
    session, _, _ = client_for(lambda subs, _: [ok(r) for r in subs])
    client = TenantClient(session)
    with pytest.raises(ValueError):
        client.graph_batch(GRAPH, "token", {})
    with pytest.raises(ValueError):
        client.graph_batch(GRAPH, "token", {str(n): "/organization" for n in range(21)})
    assert len(client.graph_batch(GRAPH, "token", {str(n): "/x" for n in range(20)})) == 20
