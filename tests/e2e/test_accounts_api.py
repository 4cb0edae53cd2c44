"""The accounts routes through the local host: Connect, list, read, unlink and onboarding."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest

from tests.conftest import RunningApp, start_azurite

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def new_key(app: RunningApp, application_id: str | None = None, tenant: str = TENANT) -> Any:
    body = {
        "tenantId": tenant,
        "applicationId": application_id or str(uuid.uuid4()),
        "displayName": "Prod",
    }
    response = app.http.post(app.api("/keys"), json=body)
    assert response.status_code == 201
    return response.json()


def connect(app: RunningApp, key: Any, **extra: Any) -> Any:
    body = {
        "displayName": "Contoso production",
        "tenantId": key["tenantId"],
        "applicationId": key["applicationId"],
        "organizationName": "contoso.onmicrosoft.com",
        "keyId": key["keyId"],
        **extra,
    }
    return app.http.post(app.api("/accounts"), json=body)


def test_connect_creates_a_pending_read_only_account(app: RunningApp) -> None:
    key = new_key(app)
    response = connect(app, key)
    assert response.status_code == 201
    account = response.json()
    assert response.headers["Location"] == f"/api/accounts/{account['id']}"
    assert account["status"] == "pending" and account["access"] == "read-only"
    assert account["cloud"] == "auto" and account["keyId"] == key["keyId"]
    assert account["thumbprint"] == key["thumbprint"]
    assert account["certificateNotAfter"] == key["notAfter"]
    assert account["lastVerifiedAt"] is None and account["lastVerification"] is None
    assert account["createdAt"] == account["updatedAt"]
    assert app.http.get(app.api(f"/accounts/{account['id']}")).json() == account
    assert app.http.get(app.api("/accounts")).json() == {"value": [account]}
    assert app.http.get(app.api(f"/keys/{key['keyId']}")).json()["accountId"] == account["id"]


@pytest.mark.parametrize("cloud", ["auto", "global", "usgov", "usgovdod", "china"])
def test_each_cloud_is_accepted(app: RunningApp, cloud: str) -> None:
    assert connect(app, new_key(app), cloud=cloud).json()["cloud"] == cloud


def test_organization_name_is_optional(app: RunningApp) -> None:
    key = new_key(app)
    body = {k: key[k] for k in ("tenantId", "applicationId", "keyId")} | {"displayName": "x"}
    response = app.http.post(app.api("/accounts"), json=body)
    assert response.status_code == 201 and response.json()["organizationName"] is None


def test_unknown_fields_in_a_connect_are_ignored(app: RunningApp) -> None:
    key = new_key(app)
    response = connect(app, key, somethingNew={"nested": [1]}, status="connected", owner="x")
    assert response.status_code == 201, response.text
    account = response.json()
    assert "somethingNew" not in account and "owner" not in account
    assert account["status"] == "pending"  # a read-only field is not taken from the body


def test_the_same_tenant_and_application_twice_is_a_409_naming_the_account(
    app: RunningApp,
) -> None:
    key = new_key(app)
    first = connect(app, key).json()
    again = connect(app, new_key(app, key["applicationId"]))
    assert again.status_code == 409
    assert again.headers["Content-Type"] == "application/problem+json"
    assert again.json()["accountId"] == first["id"]
    assert len(app.http.get(app.api("/accounts")).json()["value"]) == 1


def test_a_linked_key_for_another_app_is_a_400_and_for_its_own_pair_the_pair_409(
    app: RunningApp,
) -> None:
    key = new_key(app)
    first = connect(app, key).json()
    other_app_same_key = connect(app, key, applicationId=str(uuid.uuid4()))
    # The key was made for another application: that is a bad keyId, not a conflict.
    assert other_app_same_key.status_code == 400
    assert [e["field"] for e in other_app_same_key.json()["errors"]] == ["keyId"]
    again = connect(app, key)  # same pair, same key: the pair rule answers first
    assert again.status_code == 409 and again.json()["accountId"] == first["id"]


def test_a_key_bound_to_another_account_is_a_409_naming_that_account(app: RunningApp) -> None:
    """The key rule on its own: the key is bound to an account while its pair is still free.

    A key is made for one tenant + application and binds only to an account of that pair, so
    through the routes the pair rule always answers first (the test above); the store's key rule
    guards races and data written by other versions. The state is made in the real store, then
    the Connect goes through the route and must reach the store's KeyTaken.
    """
    key = new_key(app)
    holder = connect(app, new_key(app)).json()
    stored = app.context.accounts.get_account("local-dev", holder["id"])
    assert stored is not None
    bound_elsewhere = replace(
        stored, id=str(uuid.uuid4()), application_id=str(uuid.uuid4()), key_id=key["keyId"]
    )
    app.context.accounts.link(bound_elsewhere)
    assert app.http.get(app.api(f"/keys/{key['keyId']}")).json()["accountId"] == bound_elsewhere.id

    response = connect(app, key)  # its own pair, free; its key, taken
    assert response.status_code == 409, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["accountId"] == bound_elsewhere.id
    assert "key" in response.json()["detail"]
    listed = {a["id"] for a in app.http.get(app.api("/accounts")).json()["value"]}
    assert listed == {holder["id"], bound_elsewhere.id}


def test_twenty_concurrent_connects_give_one_201_and_nineteen_409s(app: RunningApp) -> None:
    application = str(uuid.uuid4())
    keys = [new_key(app, application) for _ in range(20)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = sorted(pool.map(lambda k: connect(app, k).status_code, keys))
    assert statuses == [201] + [409] * 19
    assert len(app.http.get(app.api("/accounts")).json()["value"]) == 1


BAD = [
    ({"displayName": ""}, "displayName"),
    ({"displayName": "x" * 65}, "displayName"),
    ({"displayName": "tab\there"}, "displayName"),
    ({"tenantId": "nope"}, "tenantId"),
    ({"applicationId": 5}, "applicationId"),
    ({"organizationName": ""}, "organizationName"),
    ({"organizationName": "x" * 257}, "organizationName"),
    ({"keyId": "not-a-key"}, "keyId"),
    ({"keyId": None}, "keyId"),
    ({"cloud": "mars"}, "cloud"),
    ({"cloud": "GLOBAL"}, "cloud"),
]


@pytest.mark.parametrize(("change", "field"), BAD)
def test_each_bad_field_is_a_400_that_writes_nothing(
    app: RunningApp, change: dict[str, Any], field: str
) -> None:
    key = new_key(app)
    response = connect(app, key, **change)
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert app.http.get(app.api("/accounts")).json() == {"value": []}
    assert app.http.get(app.api(f"/keys/{key['keyId']}")).json()["accountId"] is None


def test_a_key_of_another_tenant_or_an_unknown_key_is_a_400_on_key_id(app: RunningApp) -> None:
    key = new_key(app)
    for change in (
        {"tenantId": str(uuid.uuid4())},
        {"applicationId": str(uuid.uuid4())},
        {"keyId": str(uuid.uuid4())},
    ):
        response = connect(app, key, **change)
        assert response.status_code == 400
        assert [e["field"] for e in response.json()["errors"]] == ["keyId"]


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        (b"{", "application/json", 400),
        (b'"a string"', "application/json", 400),
        (b"{}", "application/x-www-form-urlencoded", 415),
        (json.dumps({"x": "y" * 70000}).encode(), "application/json", 413),
    ],
)
def test_malformed_bodies(app: RunningApp, data: bytes, content_type: str, status: int) -> None:
    response = app.http.post(
        app.api("/accounts"), data=data, headers={"Content-Type": content_type}
    )
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize("account_id", ["nope", str(uuid.uuid4())])
def test_unknown_or_malformed_ids_are_404_on_every_route(app: RunningApp, account_id: str) -> None:
    assert app.http.get(app.api(f"/accounts/{account_id}")).status_code == 404
    assert app.http.delete(app.api(f"/accounts/{account_id}")).status_code == 404


def test_list_is_newest_first(app: RunningApp) -> None:
    ids = [connect(app, new_key(app)).json()["id"] for _ in range(3)]
    listed = app.http.get(app.api("/accounts")).json()["value"]
    expected = sorted(
        ((a["createdAt"], a["id"]) for a in listed), key=lambda t: (-_epoch(t[0]), t[1])
    )
    assert [a["id"] for a in listed] == [i for _, i in expected]
    assert set(ids) == {a["id"] for a in listed}


def _epoch(stamp: str) -> float:
    from shared.support.timefmt import from_rfc3339

    return from_rfc3339(stamp).timestamp()


def test_unlink_removes_account_key_and_private_key(app: RunningApp) -> None:
    key = new_key(app)
    account = connect(app, key).json()
    response = app.http.delete(app.api(f"/accounts/{account['id']}"))
    assert response.status_code == 204 and response.content == b""
    assert app.http.get(app.api(f"/accounts/{account['id']}")).status_code == 404
    assert app.http.get(app.api(f"/keys/{key['keyId']}")).status_code == 404
    assert app.http.get(app.api("/accounts")).json() == {"value": []}
    assert key["keyId"] not in {k.key_id for k in app.context.keys.list()}
    assert app.context.accounts.get_key("local-dev", key["keyId"]) is None
    # The pair is free again.
    assert connect(app, new_key(app, key["applicationId"])).status_code == 201


def test_onboarding_is_required_until_an_account_is_connected(app: RunningApp) -> None:
    answer = app.http.get(app.api("/onboarding")).json()
    assert answer == {"required": True, "linkedAccounts": 0, "connectedAccounts": 0}
    account_id = connect(app, new_key(app)).json()["id"]
    answer = app.http.get(app.api("/onboarding")).json()
    assert answer == {"required": True, "linkedAccounts": 1, "connectedAccounts": 0}
    stored = app.context.accounts.get_account("local-dev", account_id)
    assert stored is not None
    app.context.accounts.update_account(stored.updated(status="connected"))
    answer = app.http.get(app.api("/onboarding")).json()
    assert answer == {"required": False, "linkedAccounts": 1, "connectedAccounts": 1}


def test_health_names_the_backends(app: RunningApp) -> None:
    response = app.http.get(app.api("/health"))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["keyStore"]["backend"] == "local"
    assert body["accountStore"]["backend"] == app.context.accounts.backend


def test_storage_outage_is_a_503_that_writes_nothing(start_app: Callable[..., RunningApp]) -> None:
    azurite = start_azurite()
    try:
        app = start_app({"ACCOUNTS_STORAGE": azurite.connection_string})
        key = new_key(app)
        account = connect(app, key).json()
        azurite.stop()

        down = connect(app, key)
        assert down.status_code == 503
        assert down.headers["Content-Type"] == "application/problem+json"
        assert int(down.headers["Retry-After"]) > 0
        created = app.http.post(
            app.api("/keys"),
            json={"tenantId": TENANT, "applicationId": str(uuid.uuid4()), "displayName": "x"},
        )
        assert created.status_code == 503
        # The store cannot say whether the record was written, so the private key written before
        # it stays (never a record without its key); at most that one, left for housekeeping.
        assert len({k.key_id for k in app.context.keys.list()} - {key["keyId"]}) <= 1
        assert app.http.get(app.api("/accounts")).status_code == 503
        assert app.http.delete(app.api(f"/accounts/{account['id']}")).status_code == 503
        assert key["keyId"] in {k.key_id for k in app.context.keys.list()}  # unlink did nothing
        health = app.http.get(app.api("/health"))
        assert health.status_code == 503
        assert health.json()["accountStore"]["status"] == "unavailable"
        assert health.json()["keyStore"]["status"] == "ok"
    finally:
        azurite.stop()


@pytest.mark.parametrize(("raw", "instance"), [("%C3%A9", "%C3%A9"), ("%25", "%25")])
def test_problem_instance_is_a_valid_uri_reference(
    start_app: Callable[..., RunningApp], raw: str, instance: str
) -> None:
    app = start_app()
    response = app.http.get(f"{app.url}/api/accounts/{raw}")
    assert response.status_code == 404
    assert response.json()["instance"] == f"/api/accounts/{instance}"
