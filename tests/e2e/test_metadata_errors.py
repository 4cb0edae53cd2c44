"""Whatever an error answer from Entra holds in `error_codes`, a verification answers a report,
never a 500 (issue 18 item 8: `int(codes[0])` on the metadata endpoint's error crashed on
`["AADSTS90002"]` or `[null]`). Metadata and token errors share one guarded reader
(`shared.core.answers.aadsts_number`).

Entra here is a scripted HTTPS server (the sandbox answers only well-formed errors), with the app
itself behind its local host: its real routes, MSAL and stores.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import RunningApp
from tests.e2e.customer import check
from tests.unit.scripted_server import Answer, ScriptedServer, scripted_server

WELL_KNOWN = "/v2.0/.well-known/openid-configuration"
TOKEN = "/oauth2/v2.0/token"


@pytest.fixture
def entra(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedServer]:
    for server in scripted_server(tls=True):
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", server.ca_path)
        yield server


@pytest.fixture
def linked(
    entra: ScriptedServer, start_app: Callable[..., RunningApp]
) -> tuple[RunningApp, str, str]:
    """The app pointed at the scripted Entra, with one account linked: (app, account, tenant)."""
    app = start_app({"ENTRA_AUTHORITY_HOST": entra.url, "GRAPH_ENDPOINT": entra.url})
    tenant, application = str(uuid.uuid4()), str(uuid.uuid4())
    key = app.http.post(
        app.api("/keys"),
        json={"tenantId": tenant, "applicationId": application, "displayName": "Contoso"},
    )
    assert key.status_code == 201, key.text
    account = app.http.post(
        app.api("/accounts"),
        json={
            "displayName": "Contoso",
            "tenantId": tenant,
            "applicationId": application,
            "keyId": key.json()["keyId"],
        },
    )
    assert account.status_code == 201, account.text
    return app, account.json()["id"], tenant


def verify(app: RunningApp, account_id: str) -> dict[str, Any]:
    response = app.http.post(app.api(f"/accounts/{account_id}/verify"))
    assert response.status_code == 200, response.text  # a report, never a 500
    report: dict[str, Any] = response.json()
    return report


def error_body(codes: str, description: str = '"AADSTS90002: Tenant not found."') -> bytes:
    # Raw JSON text: some of these (1e400) cannot even be written by json.dumps.
    return (
        f'{{"error": "invalid_tenant", "error_codes": {codes}, "error_description": {description}}}'
    ).encode()


MALFORMED = {
    "code as text": error_body('["AADSTS90002"]'),
    "null": error_body("[null]"),
    "empty list": error_body("[]"),
    "not a list": error_body('"x"'),
    "beyond any float": error_body("[1e400]"),
    "true": error_body("[true]"),
    "false": error_body("[false]"),
    "nested list": error_body("[[90002]]"),
    "object": error_body('[{"code": 90002}]'),
    "negative": error_body("[-90002]"),
    "zero": error_body("[0]"),
    "huge integer": error_body("[123456789012345678901234567890]"),
    "fraction": error_body("[90002.5]"),
    "description not text": error_body("[90002]", '{"text": 1}'),
    "body a list": b"[90002]",
    "body not json": b"AADSTS90002 tenant not found",
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_metadata_error_fails_the_tenant_check_not_the_request(
    entra: ScriptedServer, linked: tuple[RunningApp, str, str], body: bytes
) -> None:
    app, account_id, _ = linked
    # API.md: a 400 from the metadata endpoint means the tenant does not exist.
    entra.route(WELL_KNOWN, Answer(400, body=body))
    report = verify(app, account_id)
    tenant_check = check(report, "tenant")
    assert tenant_check["status"] == "fail"
    assert tenant_check["code"] == "AADSTS90002"  # the code the rule names when none is readable
    assert report["status"] == "action_required"
    assert check(report, "application")["status"] == "skipped"


def test_a_code_given_as_text_is_still_read(
    entra: ScriptedServer, linked: tuple[RunningApp, str, str]
) -> None:
    app, account_id, _ = linked
    entra.route(WELL_KNOWN, Answer(400, body=error_body('["AADSTS900023"]')))
    assert check(verify(app, account_id), "tenant")["code"] == "AADSTS900023"


def test_a_metadata_answer_that_is_not_an_object_is_a_retryable_error(
    entra: ScriptedServer, linked: tuple[RunningApp, str, str]
) -> None:
    app, account_id, _ = linked
    entra.route(WELL_KNOWN, Answer(200, body=b"[1, 2]"))
    tenant_check = check(verify(app, account_id), "tenant")
    assert tenant_check["status"] == "error" and tenant_check["retryable"] is True


def _metadata(base: str, tenant: str) -> bytes:
    authority = f"{base}/{tenant}"
    return json.dumps(
        {
            "issuer": f"{authority}/v2.0",
            "authorization_endpoint": f"{authority}/oauth2/v2.0/authorize",
            "token_endpoint": f"{authority}{TOKEN}",
            "jwks_uri": f"{authority}/discovery/v2.0/keys",
        }
    ).encode()


@pytest.mark.parametrize("codes", ["[null]", "[1e400]", '"x"', "[true]", "[[700027]]"])
def test_a_malformed_token_error_goes_through_the_same_reader(
    entra: ScriptedServer, linked: tuple[RunningApp, str, str], codes: str
) -> None:
    app, account_id, tenant = linked
    entra.route(WELL_KNOWN, Answer(200, body=_metadata(entra.url, tenant)))
    entra.route(TOKEN, Answer(401, body=token_error(codes)))
    report = verify(app, account_id)
    assert check(report, "tenant")["status"] == "pass"
    # No readable code: an answer no rule knows, reported as it came, never guessed at.
    application = check(report, "application")
    assert application["status"] == "error" and application["retryable"] is True
    assert check(report, "certificate")["status"] == "skipped"


def test_a_token_error_code_given_as_text_is_still_read(
    entra: ScriptedServer, linked: tuple[RunningApp, str, str]
) -> None:
    app, account_id, tenant = linked
    entra.route(WELL_KNOWN, Answer(200, body=_metadata(entra.url, tenant)))
    entra.route(TOKEN, Answer(401, body=token_error('["AADSTS700027"]')))
    certificate = check(verify(app, account_id), "certificate")
    assert (certificate["status"], certificate["code"]) == ("fail", "AADSTS700027")


def token_error(codes: str) -> bytes:
    return (
        f'{{"error": "invalid_client", "error_codes": {codes}, '
        '"error_description": "AADSTS700027: Client assertion failed signature validation."}'
    ).encode()
