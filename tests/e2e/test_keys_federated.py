"""POST /api/keys with `kind: federated` and the credential's download, as the portal calls them
(API.md, "Creating one"): no key pair of its own, the exact Graph body, and the 400s."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import RunningApp

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
APP = "11111111-2222-3333-4444-555555555555"
FEDERATED = {
    "kind": "federated",
    "tenantId": TENANT,
    "applicationId": APP,
    "displayName": "Contoso production (EU)",
}
NAME_RULE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,119}$")


@pytest.fixture
def app(start_app: Callable[..., RunningApp]) -> RunningApp:
    return start_app()


def create(app: RunningApp, body: Any = None) -> Any:
    return app.http.post(app.api("/keys"), json=FEDERATED if body is None else body)


def stored(app: RunningApp) -> tuple[set[str], list[Any]]:
    return {k.key_id for k in app.context.keys.list()}, list(app.context.accounts.list_keys())


def test_a_federated_credential_is_a_key_resource_without_a_certificate(app: RunningApp) -> None:
    response = create(app)
    assert response.status_code == 201, response.text
    key = response.json()
    assert response.headers["Location"] == f"/api/keys/{key['keyId']}"
    assert key["kind"] == "federated"
    federation = key["federation"]
    assert federation["issuer"] == app.context.settings.oidc_issuer
    assert not federation["issuer"].endswith("/")
    assert federation["audience"] == "api://AzureADTokenExchange"
    assert re.fullmatch(r"[A-Za-z0-9:._-]{1,600}", federation["subject"])
    assert key["keyId"] in federation["subject"]
    assert NAME_RULE.match(federation["name"])
    for absent in ("thumbprint", "thumbprintSha256", "subject", "notBefore", "notAfter"):
        assert key[absent] is None, absent
    assert key["keySize"] is None and key["certificatePem"] is None
    assert key["custody"] == "local" and key["accountId"] is None
    assert key["expiresAt"] is not None  # retained while no account uses it, like any key
    assert app.http.get(app.api(f"/keys/{key['keyId']}")).json() == key


def test_every_key_resource_names_its_kind(app: RunningApp) -> None:
    body = {k: v for k, v in FEDERATED.items() if k != "kind"}
    certificate = create(app, body).json()
    assert certificate["kind"] == "certificate" and certificate["federation"] is None


def test_two_credentials_of_one_app_have_different_subjects_and_names(app: RunningApp) -> None:
    first, second = create(app).json(), create(app).json()
    assert first["federation"]["subject"] != second["federation"]["subject"]
    assert first["federation"]["name"] != second["federation"]["name"]


def test_the_json_download_is_exactly_what_graph_and_az_take(app: RunningApp) -> None:
    key = create(app).json()
    response = app.http.get(app.api(f"/keys/{key['keyId']}"), params={"format": "json"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    name = key["federation"]["name"]
    assert response.headers["Content-Disposition"] == f'attachment; filename="{name}.json"'
    body = json.loads(response.content)
    assert list(body) == ["name", "issuer", "subject", "audiences", "description"]
    assert body["name"] == name
    assert body["issuer"] == key["federation"]["issuer"]
    assert body["subject"] == key["federation"]["subject"]
    assert body["audiences"] == ["api://AzureADTokenExchange"]
    assert isinstance(body["description"], str) and len(body["description"]) <= 600


@pytest.mark.parametrize("fmt", ["cer", "pem", "crt"])
def test_a_certificate_format_of_a_federated_credential_is_a_400_naming_format(
    app: RunningApp, fmt: str
) -> None:
    key = create(app).json()
    response = app.http.get(app.api(f"/keys/{key['keyId']}"), params={"format": fmt})
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["format"]


def test_json_of_a_certificate_is_a_400_naming_format(app: RunningApp) -> None:
    key = create(app, {k: v for k, v in FEDERATED.items() if k != "kind"}).json()
    response = app.http.get(app.api(f"/keys/{key['keyId']}"), params={"format": "json"})
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["format"]


@pytest.mark.parametrize(
    ("extra", "field"),
    [({"validityDays": 365}, "validityDays"), ({"keySize": 2048}, "keySize")],
)
def test_certificate_options_with_kind_federated_are_400s_that_change_nothing(
    app: RunningApp, extra: dict[str, Any], field: str
) -> None:
    before = stored(app)
    response = create(app, {**FEDERATED, **extra})
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert stored(app) == before


@pytest.mark.parametrize("kind", ["Federated", "secret", 1, True, ""])
def test_an_unknown_kind_is_a_400_naming_kind(app: RunningApp, kind: Any) -> None:
    response = create(app, {**FEDERATED, "kind": kind})
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["kind"]


def test_a_federated_credential_makes_no_key_of_its_own_but_the_issuer_key_once(
    app: RunningApp,
) -> None:
    before, _ = stored(app)
    create(app)
    create(app)
    after, records = stored(app)
    # One issuer key signs for every federated credential; the credentials hold none.
    assert len(after - before) == 1
    assert sum(1 for r in records if r.kind == "federated") == 2
    health = app.http.get(app.api("/health")).json()
    assert health["issuer"] == {"status": "ok", "keys": 1}


def test_linking_binds_it_and_a_used_credential_is_a_409_for_another_account(
    app: RunningApp,
) -> None:
    key = create(app).json()
    link = {
        "displayName": "Contoso",
        "tenantId": TENANT,
        "applicationId": APP,
        "keyId": key["keyId"],
    }
    account = app.http.post(app.api("/accounts"), json=link)
    assert account.status_code == 201, account.text
    linked = account.json()
    assert linked["credential"] == "federated"
    assert linked["thumbprint"] is None and linked["certificateNotAfter"] is None
    bound = app.http.get(app.api(f"/keys/{key['keyId']}")).json()
    assert bound["accountId"] == linked["id"] and bound["expiresAt"] is None
    other_app = {**link, "applicationId": "22222222-2222-3333-4444-555555555555"}
    assert app.http.post(app.api("/accounts"), json=other_app).status_code == 400
    again = app.http.post(app.api("/accounts"), json={**link, "displayName": "twice"})
    assert again.status_code == 409


def test_unlink_deletes_the_credentials_record(app: RunningApp) -> None:
    key = create(app).json()
    link = {"displayName": "C", "tenantId": TENANT, "applicationId": APP, "keyId": key["keyId"]}
    account = app.http.post(app.api("/accounts"), json=link).json()
    assert app.http.delete(app.api(f"/accounts/{account['id']}")).status_code == 204
    assert app.http.get(app.api(f"/keys/{key['keyId']}")).status_code == 404
    _, records = stored(app)
    assert all(r.key_id != key["keyId"] for r in records)


def test_null_certificate_options_with_kind_federated_are_as_absent(app: RunningApp) -> None:
    response = create(app, {**FEDERATED, "validityDays": None, "keySize": None})
    assert response.status_code == 201, response.text
    assert response.json()["kind"] == "federated"
