"""The input rules of API.md through Microsoft's worker library: query, bodies, methods, logs."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import RunningApp
from tests.runtime.worker_host import WorkerHost

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
APP = "11111111-2222-3333-4444-555555555555"
VALID = {"tenantId": TENANT, "applicationId": APP, "displayName": "Contoso production"}
JWS = re.compile(r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


@pytest.fixture
def app(start_worker_app: Callable[..., RunningApp]) -> RunningApp:
    return start_worker_app()


def new_key(app: RunningApp, **fields: Any) -> dict[str, Any]:
    response = app.http.post(app.api("/keys"), json={**VALID, **fields})
    assert response.status_code == 201, response.text
    key: dict[str, Any] = response.json()
    return key


def keys_stored(app: RunningApp) -> int:
    return len(list(app.context.accounts.list_keys()))


def test_an_empty_query_value_is_answered_as_an_absent_one(app: RunningApp) -> None:
    key = new_key(app)
    as_json = app.http.get(app.api(f"/keys/{key['keyId']}?format="))
    assert as_json.status_code == 200 and as_json.json() == key  # the resource, no download
    connected = app.http.post(app.api("/accounts"), json={**VALID, "keyId": key["keyId"]})
    assert connected.status_code == 201, connected.text
    account_id = connected.json()["id"]
    for path in (
        "/accounts?top=",
        "/accounts?after=",
        "/accounts?status=",
        "/accounts?top=&after=&status=",
    ):
        page = app.http.get(app.api(path))
        assert page.status_code == 200, (path, page.text)
        assert [a["id"] for a in page.json()["value"]] == [account_id]
    history = app.http.get(app.api(f"/accounts/{account_id}/history?top=&after="))
    assert history.status_code == 200 and history.json()["value"][0]["type"] == "linked"
    feed = app.http.get(app.api("/events?after=&top="))
    assert feed.status_code == 200 and [e["type"] for e in feed.json()["value"]] == ["linked"]


def test_a_query_name_given_twice_reaches_the_app_joined_by_a_comma(app: RunningApp) -> None:
    # ASP.NET Core's query collection: one name, its values joined ("1,2"): not an integer.
    refused = app.http.get(app.api("/accounts?top=1&top=2"))
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["field"] == "top"
    # An empty value among them is skipped, so this is top=1.
    assert app.http.get(app.api("/accounts?top=&top=1")).status_code == 200


def test_every_route_answers_a_method_it_does_not_serve_with_405_and_allow(
    app: RunningApp,
) -> None:
    some_id = str(uuid.uuid4())
    for method, path, allow in (
        ("PUT", "/keys", "POST"),
        ("DELETE", f"/keys/{some_id}", "GET"),
        ("PUT", "/accounts", "GET, POST"),
        ("POST", f"/accounts/{some_id}", "GET, PATCH, DELETE"),
        ("GET", f"/accounts/{some_id}/verify", "POST"),
        ("PUT", f"/accounts/{some_id}/rotation", "GET, POST, DELETE"),
        ("POST", f"/accounts/{some_id}/history", "GET"),
        ("POST", "/events", "GET"),
        ("POST", "/onboarding", "GET"),
        ("DELETE", "/health", "GET"),
        ("POST", "/oidc/jwks", "GET, HEAD"),
        ("PUT", "/oidc/.well-known/openid-configuration", "GET, HEAD"),
    ):
        response = app.http.request(method, app.api(path))
        assert response.status_code == 405, (method, path, response.status_code)
        assert response.headers["Allow"] == allow
        assert response.headers["Content-Type"] == "application/problem+json"
        assert response.json()["status"] == 405
    options = app.http.options(app.api("/accounts"))
    assert options.status_code == 204 and options.headers["Allow"] == "GET, POST"
    assert app.http.get(app.api("/nothing-here")).status_code == 404  # the host's own 404


def test_a_body_over_64_kib_is_a_413_problem_and_stores_nothing(app: RunningApp) -> None:
    body = json.dumps({**VALID, "pad": "x" * (64 * 1024)}).encode()
    response = app.http.post(
        app.api("/keys"), data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.headers["Content-Type"] == "application/problem+json"
    assert keys_stored(app) == 0


def test_a_body_over_the_hosts_limit_never_reaches_the_worker(
    start_worker_app: Callable[..., RunningApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FUNCTIONS_REQUEST_BODY_SIZE_LIMIT", "1000")
    app = start_worker_app()
    host: WorkerHost = app.host  # type: ignore[assignment]
    response = app.http.post(app.api("/keys"), data=b" " * 1001)
    assert response.status_code == 413 and response.content == b""
    assert host.responses == []  # no invocation


def chunks(data: bytes) -> Iterator[bytes]:
    for i in range(0, len(data), 100):
        yield data[i : i + 100]


def test_a_chunked_body_is_a_411_and_changes_nothing(app: RunningApp) -> None:
    # ToRpcHttp hands a body over only when Content-Length is over 0: a chunked one never
    # reaches the worker, so the app must not act on the request as if it had no body.
    body = json.dumps(VALID).encode()
    response = app.http.post(
        app.api("/keys"), data=chunks(body), headers={"Content-Type": "application/json"}
    )
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert response.status_code == 411, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert keys_stored(app) == 0
    account_id = str(uuid.uuid4())
    rotation = app.http.post(
        app.api(f"/accounts/{account_id}/rotation"),
        data=chunks(b'{"validityDays": 180}'),
        headers={"Content-Type": "application/json"},
    )
    assert rotation.status_code == 411  # not a rotation started with the defaults


def test_a_body_is_handed_over_as_the_bytes_sent(app: RunningApp) -> None:
    name = "Zürich – 東京 😀"
    key = new_key(app, displayName=name)
    assert key["displayName"] == name
    latin1 = json.dumps({**VALID, "displayName": "Zürich"}, ensure_ascii=False).encode("latin-1")
    refused = app.http.post(
        app.api("/keys"), data=latin1, headers={"Content-Type": "application/json"}
    )
    assert refused.status_code == 400  # not UTF-8: a problem, never a 500
    assert keys_stored(app) == 1


def test_each_request_logs_one_line_through_the_workers_handler(app: RunningApp) -> None:
    host: WorkerHost = app.host  # type: ignore[assignment]
    new_key(app)
    app.http.delete(app.api("/health"))
    assert len(host.responses) == 2
    for response, status in zip(host.responses, (201, 405), strict=True):
        records = host.worker.logs.of(response.invocation_id)
        lines = [r for r in records if r.category == "m365link.http"]
        assert len(lines) == 1 and lines[0].level == logging.INFO
        assert f"status={status}" in lines[0].message
    for record in host.worker.logs.records:
        assert "Traceback" not in record.message and not JWS.search(record.message)
