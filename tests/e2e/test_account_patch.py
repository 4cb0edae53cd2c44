"""PATCH /api/accounts/{id} beyond the document check of test_openapi: removing the organisation
name, the fields that cannot be removed, the `updated` event (one per real change, by the
caller), If-Match (`*`, lists, weak tags), and concurrent PATCHes that must all land with no
lost update. On both account stores."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests.conftest import SEEN, RunningApp, api_session
from tests.e2e.customer import Customer, check
from tests.e2e.test_rotation import events_of, table_settings

THREADS = 8
ROUNDS = 4


@pytest.fixture(params=["sqlite", "table"])
def backend(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "sqlite":
        return {}
    return table_settings(request.getfixturevalue("azurite"))


@pytest.fixture
def app(sandboxed_app: Callable[..., RunningApp], backend: dict[str, str]) -> RunningApp:
    return sandboxed_app(backend)


def linked(app: RunningApp, sandbox: Any) -> Customer:
    return Customer(app, sandbox).link_all_the_way()


def url_of(customer: Customer) -> str:
    return customer.app.api(f"/accounts/{customer.account['id']}")


def read(customer: Customer) -> requests.Response:
    response = customer.app.http.get(url_of(customer))
    assert response.status_code == 200, response.text
    return response


def patch(customer: Customer, body: Any, **headers: str) -> requests.Response:
    return customer.app.http.patch(url_of(customer), json=body, headers=headers)


def updated_events(customer: Customer) -> list[dict[str, Any]]:
    return [e for e in events_of(customer) if e["type"] == "updated"]


def test_null_removes_the_organisation_name_and_the_check_then_passes(
    app: RunningApp, sandbox: Any
) -> None:
    customer = linked(app, sandbox)
    assert customer.current()["organizationName"] == customer.domains[0]
    response = patch(customer, {"organizationName": None})
    assert response.status_code == 200, response.text
    assert response.json()["organizationName"] is None
    assert customer.current()["organizationName"] is None
    report = customer.verify()
    organization = check(report, "organization_match")
    assert organization["status"] == "pass"
    assert "No organisation name" in organization["detail"]
    # Setting it again to a name that does not match is compared again (a warning).
    assert patch(customer, {"organizationName": "fabrikam.example"}).status_code == 200
    assert check(customer.verify(), "organization_match")["status"] == "warn"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"displayName": None}, "displayName"),
        ({"certificateRenewal": None}, "certificateRenewal"),
        ({"certificateRenewal": "sometimes"}, "certificateRenewal"),
        ({"displayName": ""}, "displayName"),
        ({"organizationName": ""}, "organizationName"),
        ({"displayName": "x" * 65}, "displayName"),
        ({"organizationName": 7}, "organizationName"),
        # A valid field next to a bad one: nothing of it is applied either.
        ({"displayName": "Renamed", "certificateRenewal": "sometimes"}, "certificateRenewal"),
    ],
)
def test_a_field_that_cannot_take_the_value_is_a_400_naming_it_and_changes_nothing(
    app: RunningApp, sandbox: Any, body: dict[str, Any], field: str
) -> None:
    customer = linked(app, sandbox)
    before = read(customer)
    response = patch(customer, body)
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == [field]
    after = read(customer)
    assert after.json() == before.json()
    assert after.headers["ETag"] == before.headers["ETag"]
    assert updated_events(customer) == []


def test_a_patch_that_changes_nothing_writes_nothing(app: RunningApp, sandbox: Any) -> None:
    customer = linked(app, sandbox)
    before = read(customer)
    account = before.json()
    for body in (
        {},
        {"displayName": account["displayName"]},
        {"organizationName": account["organizationName"], "certificateRenewal": "manual"},
    ):
        response = patch(customer, body)
        assert response.status_code == 200, response.text
        assert response.json() == account
        assert response.headers["ETag"] == before.headers["ETag"]
    assert read(customer).json()["updatedAt"] == account["updatedAt"]
    assert updated_events(customer) == []


def test_a_real_change_writes_one_updated_event_by_the_caller(
    app: RunningApp, sandbox: Any
) -> None:
    customer = linked(app, sandbox)
    before = read(customer)
    response = patch(customer, {"displayName": "Renamed", "certificateRenewal": "automatic"})
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] != before.headers["ETag"]
    assert response.headers["ETag"] == read(customer).headers["ETag"]
    (event,) = updated_events(customer)
    assert event["actor"] == {"kind": "user", "id": "local-dev"}  # the caller, not the timer
    assert event["detail"] == "changed displayName, certificateRenewal"
    assert event["status"] == customer.current()["status"]
    # A body repeating a field's current value next to a real change: the event names only
    # what changed.
    again = patch(customer, {"displayName": "Renamed", "organizationName": "fabrikam.example"})
    assert again.status_code == 200, again.text
    assert [e["detail"] for e in updated_events(customer)] == [
        "changed displayName, certificateRenewal",
        "changed organizationName",
    ]


def test_the_updated_event_names_the_signed_in_caller(
    sandboxed_app: Callable[..., RunningApp], sandbox: Any, backend: dict[str, str]
) -> None:
    audience = "api://portal-backend"
    app = sandboxed_app(
        {
            **backend,
            "AUTH_MODE": "entra",
            "AUTH_AUDIENCE": audience,
            "AUTH_ISSUER": sandbox.base_url + "/{tid}/v2.0",
            "AUTH_JWKS_URI": sandbox.base_url + "/portal/common/discovery/v2.0/keys",
        }
    )
    oid = str(uuid.uuid4())
    token = sandbox.admin.mint_portal_token(str(uuid.uuid4()), audience, claims={"oid": oid})
    SEEN.secrets.add(token)
    app.http.headers["Authorization"] = f"Bearer {token}"
    customer = linked(app, sandbox)
    assert patch(customer, {"displayName": "Renamed by Alice"}).status_code == 200
    (event,) = updated_events(customer)
    assert event["actor"] == {"kind": "user", "id": oid}


def test_if_match_star_and_lists_match_and_weak_tags_never_do(
    app: RunningApp, sandbox: Any
) -> None:
    customer = linked(app, sandbox)
    etag = read(customer).headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')  # strong
    version = int(etag.strip('"'))

    weak = patch(customer, {"displayName": "Weak"}, **{"If-Match": f"W/{etag}"})
    assert weak.status_code == 412, weak.text
    assert weak.json()["type"].endswith("/precondition-failed")
    weak_list = patch(customer, {"displayName": "Weak"}, **{"If-Match": f'"0", W/{etag}'})
    assert weak_list.status_code == 412
    assert read(customer).headers["ETag"] == etag  # nothing applied

    star = patch(customer, {"displayName": "Star"}, **{"If-Match": "*"})
    assert star.status_code == 200, star.text
    etag = star.headers["ETag"]
    listed = patch(
        customer,
        {"displayName": "Listed"},
        **{"If-Match": f'"{version + 100}", W/"{version}",{etag}'},
    )
    assert listed.status_code == 200, listed.text
    assert listed.json()["displayName"] == "Listed"
    stale = patch(customer, {"displayName": "Stale"}, **{"If-Match": f'"{version}", {etag}'})
    assert stale.status_code == 412  # neither tag is current any more
    assert read(customer).json()["displayName"] == "Listed"
    assert [e["detail"] for e in updated_events(customer)] == ["changed displayName"] * 2

    # DELETE takes the same rules: a weak tag is refused, a list with the current one unlinks.
    current = read(customer).headers["ETag"]
    refused = customer.app.http.delete(url_of(customer), headers={"If-Match": f"W/{current}"})
    assert refused.status_code == 412
    deleted = customer.app.http.delete(url_of(customer), headers={"If-Match": f'"0", {current}'})
    assert deleted.status_code == 204
    assert customer.app.http.get(url_of(customer)).status_code == 404


# --- concurrent PATCHes ------------------------------------------------------------------
FIELDS = ("displayName", "organizationName", "certificateRenewal")


def value_for(field: str, thread: int, round_: int) -> str:
    if field == "certificateRenewal":
        return ("automatic", "manual")[(thread + round_) % 2]
    if field == "organizationName":
        return f"org-{thread}-{round_}.example.com"
    return f"name {thread}.{round_}"


def without_updated_at(account: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in account.items() if k != "updatedAt"}


def concurrent_patches(
    customer: Customer, headers: dict[str, str]
) -> list[tuple[str, str, requests.Response]]:
    """THREADS threads, each PATCHing its field ROUNDS times, all at once: (field, value,
    answer) of every PATCH, each checked to be a 200 showing its own change."""
    barrier = threading.Barrier(THREADS)
    url = url_of(customer)

    def run(thread: int) -> list[tuple[str, str, requests.Response]]:
        session = api_session()
        field = FIELDS[thread % len(FIELDS)]
        barrier.wait()
        done = []
        for round_ in range(ROUNDS):
            value = value_for(field, thread, round_)
            done.append((field, value, session.patch(url, json={field: value}, headers=headers)))
        return done

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        results = [r for thread in pool.map(run, range(THREADS)) for r in thread]
    for field, value, response in results:
        assert response.status_code == 200, (
            f"{field}={value}: {response.status_code} {response.text}"
        )
        assert response.json()[field] == value  # each PATCH answers its own change applied
    return results


@pytest.mark.parametrize("if_match", [None, "*"], ids=["no-if-match", "if-match-star"])
def test_concurrent_patches_of_different_fields_all_land_with_no_lost_update(
    app: RunningApp, sandbox: Any, if_match: str | None
) -> None:
    customer = linked(app, sandbox)
    first = read(customer)
    initial = int(first.headers["ETag"].strip('"'))
    headers = {"If-Match": if_match} if if_match else {}
    results = concurrent_patches(customer, headers)

    # Every write is one version; a PATCH that found its value already set wrote none. Group
    # the answers by version: each version is ONE state of the account.
    states: dict[int, dict[str, Any]] = {initial: without_updated_at(first.json())}
    writers: dict[int, list[tuple[str, str]]] = {}
    for field, value, response in results:
        version = int(response.headers["ETag"].strip('"'))
        body = without_updated_at(response.json())
        assert states.setdefault(version, body) == body, f"two states at version {version}"
        writers.setdefault(version, []).append((field, value))
    final = read(customer)
    last = int(final.headers["ETag"].strip('"'))
    assert without_updated_at(final.json()) == states[max(states)]
    assert last == max(states)
    # No version missing between the first and the last: every write was answered to its writer.
    assert sorted(states) == list(range(initial, last + 1))
    # No lost update: each version is the one before it with exactly its writer's change.
    for version in range(initial + 1, last + 1):
        before, after = states[version - 1], states[version]
        assert any(
            after == {**before, field: value} and before[field] != value
            for field, value in writers[version]
        ), f"version {version} is not version {version - 1} plus one PATCH: {writers[version]}"
    # One `updated` event per write, none for the PATCHes that changed nothing.
    assert len(updated_events(customer)) == last - initial


def test_a_portal_on_another_origin_can_read_the_etag(app: Any) -> None:
    """CORS shows a script only simple response headers unless the answer exposes others."""
    key = app.http.post(
        app.api("/keys"),
        json={
            "tenantId": str(uuid.uuid4()),
            "applicationId": str(uuid.uuid4()),
            "displayName": "x",
        },
    ).json()
    created = app.http.post(
        app.api("/accounts"),
        json={"displayName": "x", "tenantId": key["tenantId"],
              "applicationId": key["applicationId"], "keyId": key["keyId"]},
    )  # fmt: skip
    read = app.http.get(app.api(f"/accounts/{created.json()['id']}"))
    for response in (created, read):
        exposed = {h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
        assert {"ETag", "Location", "Retry-After"} <= exposed
