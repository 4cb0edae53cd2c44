"""Paged account lists, account history and the change feed through the local host."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from shared.core.model import Account
from shared.core.settings import SettingsInvalid, load_settings
from shared.linking import history
from shared.support.timefmt import from_rfc3339, utc_now
from shared.timer import housekeeping
from shared.timer import run as health_check
from tests.conftest import SEEN, RunningApp
from tests.contract.test_account_store import T0, account_for, key
from tests.e2e.customer import Customer
from tests.e2e.test_accounts_api import connect, new_key

LOCAL = "local-dev"


def seed(app: RunningApp, owner: str = LOCAL, **kw: Any) -> Account:
    """An account written straight through the store (quicker than a key per account)."""
    k = key(owner)
    app.context.accounts.add_key(k)
    account = account_for(k, **kw)
    app.context.accounts.link(account)
    return account


def follow(app: RunningApp, path: str, **params: Any) -> tuple[list[dict[str, Any]], list[str]]:
    items: list[dict[str, Any]] = []
    links: list[str] = []
    response = app.http.get(app.api(path), params=params)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["value"]
        if "nextLink" not in body:
            return items, links
        links.append(body["nextLink"])
        response = app.http.get(app.url + body["nextLink"])


def test_the_list_pages_with_next_link_while_accounts_come_and_go(app: RunningApp) -> None:
    accounts = [seed(app, created=T0 - timedelta(seconds=i % 40)) for i in range(120)]
    seed(app, owner="someone-else")
    expected = [a.id for a in sorted(accounts, key=lambda a: (-a.created_at.timestamp(), a.id))]
    seen: list[str] = []
    response = app.http.get(app.api("/accounts"), params={"top": 25})
    gone: set[str] = set()
    while True:
        assert response.status_code == 200
        body = response.json()
        assert len(body["value"]) <= 25
        seen += [a["id"] for a in body["value"]]
        seed(app, created=T0 - timedelta(seconds=20))  # behind and ahead of the cursor
        victim = next((i for i in reversed(expected) if i not in gone and i not in seen), None)
        if victim:
            assert app.http.delete(app.api(f"/accounts/{victim}")).status_code == 204
            gone.add(victim)
        if "nextLink" not in body:
            break
        assert body["nextLink"].startswith("/api/accounts?top=25&after=")
        response = app.http.get(app.url + body["nextLink"])
    assert len(seen) == len(set(seen))
    throughout = [i for i in expected if i not in gone]
    assert [i for i in seen if i in set(throughout)] == throughout


def test_status_filter_default_top_and_the_last_page(app: RunningApp) -> None:
    accounts = [seed(app, created=T0 - timedelta(seconds=i)) for i in range(103)]
    connected = accounts[5]
    app.context.accounts.update_account(connected.updated(status="connected"))
    first = app.http.get(app.api("/accounts")).json()
    assert len(first["value"]) == 100 and "nextLink" in first
    assert "top=100" in first["nextLink"]
    rest = app.http.get(app.url + first["nextLink"]).json()
    assert [a["id"] for a in rest["value"]] == [a.id for a in accounts[100:]]
    assert "nextLink" not in rest
    only, links = follow(app, "/accounts", status="connected", top=1)
    assert [a["id"] for a in only] == [connected.id] and links == []
    pending, links = follow(app, "/accounts", status="pending", top=1000)
    assert len(pending) == 102 and links == []
    paged, links = follow(app, "/accounts", status="pending", top=50)
    assert [a["id"] for a in paged] == [a["id"] for a in pending]
    assert all("status=pending" in link for link in links) and len(links) == 2
    assert app.http.get(app.api("/onboarding")).json() == {
        "required": False,
        "linkedAccounts": 103,
        "connectedAccounts": 1,
    }


def forged(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"top": "0"}, "top"),
        ({"top": "1001"}, "top"),
        ({"top": "-1"}, "top"),
        ({"top": "ten"}, "top"),
        ({"top": "1.5"}, "top"),
        ({"top": "١٠"}, "top"),  # Arabic-Indic digits: int() reads them, the API does not
        ({"status": "error"}, "status"),
        ({"status": "Connected"}, "status"),
        ({"after": "garbage!"}, "after"),
        ({"after": "x" * 300}, "after"),
        ({"after": forged([1, 2])}, "after"),
        ({"after": forged({"p": 5})}, "after"),
        ({"after": forged({"p": "acct_x", "q": 1})}, "after"),
        ({"after": forged({"p": "' or PartitionKey ne ''"})}, "after"),
        ({"after": forged({"p": "1_" + str(uuid.uuid4())})}, "after"),
        ({"after": base64.urlsafe_b64encode(b"\xff\xfe").decode()}, "after"),
    ],
)
def test_bad_paging_parameters_are_a_400_naming_them(
    app: RunningApp, params: dict[str, str], field: str
) -> None:
    response = app.http.get(app.api("/accounts"), params=params)
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == field


def test_a_well_formed_forged_position_never_shows_another_owner(app: RunningApp) -> None:
    theirs = seed(app, owner="someone-else", created=T0)
    # The other owner's account's own position, and one before everything.
    for position in (f"{10**12 - 1 - int(T0.timestamp()) - 1:012d}_{theirs.id}", "0" * 12 + "_a"):
        response = app.http.get(app.api("/accounts"), params={"after": forged({"p": position})})
        assert response.status_code == 200 and response.json() == {"value": []}


def test_bounds_of_top_are_accepted(app: RunningApp) -> None:
    seed(app)
    seed(app)
    one = app.http.get(app.api("/accounts"), params={"top": "1"}).json()
    assert len(one["value"]) == 1 and "nextLink" in one
    assert len(app.http.get(app.api("/accounts"), params={"top": "1000"}).json()["value"]) == 2


def test_history_and_feed_record_link_and_unlink_by_the_caller(app: RunningApp) -> None:
    first = connect(app, new_key(app)).json()
    second = connect(app, new_key(app)).json()
    assert app.http.delete(app.api(f"/accounts/{first['id']}")).status_code == 204
    # An unlinked account's history stays readable until retention removes it.
    history = app.http.get(app.api(f"/accounts/{first['id']}/history")).json()
    assert [(e["type"], e["status"], e["previousStatus"]) for e in history["value"]] == [
        ("unlinked", None, "pending"),
        ("linked", "pending", None),
    ]
    assert all(e["actor"] == {"kind": "user", "id": LOCAL} for e in history["value"])
    assert all(e["accountId"] == first["id"] for e in history["value"])
    page = app.http.get(app.api(f"/accounts/{first['id']}/history"), params={"top": 1}).json()
    assert [e["type"] for e in page["value"]] == ["unlinked"]
    older = app.http.get(app.url + page["nextLink"]).json()
    assert [e["type"] for e in older["value"]] == ["linked"] and "nextLink" not in older
    feed = app.http.get(app.api("/events"), params={"top": 2}).json()
    assert [(e["accountId"], e["type"]) for e in feed["value"]] == [
        (first["id"], "linked"),
        (second["id"], "linked"),
    ]
    rest = app.http.get(app.api("/events"), params={"after": feed["cursor"]}).json()
    assert [(e["accountId"], e["type"]) for e in rest["value"]] == [(first["id"], "unlinked")]
    empty = app.http.get(app.api("/events"), params={"after": rest["cursor"]}).json()
    assert empty == {"value": [], "cursor": rest["cursor"]}


def test_history_of_no_such_account_is_a_404(app: RunningApp) -> None:
    theirs = seed(app, owner="someone-else")
    for account_id in (theirs.id, str(uuid.uuid4()), "not-a-guid"):
        response = app.http.get(app.api(f"/accounts/{account_id}/history"))
        assert response.status_code == 404
        assert theirs.id not in response.text or account_id == theirs.id


@pytest.mark.parametrize("after", ["-1", "abc", "1.0", "99999999999999999", "5", "\u0663"])
def test_a_feed_cursor_never_handed_out_is_a_400(app: RunningApp, after: str) -> None:
    response = app.http.get(app.api("/events"), params={"after": after})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "after"


def test_new_routes_answer_other_methods_with_405_and_allow(app: RunningApp) -> None:
    for path in ("/events", f"/accounts/{uuid.uuid4()}/history"):
        response = app.http.post(app.api(path), json={})
        assert response.status_code == 405 and response.headers["Allow"] == "GET"


def test_history_retention_setting_is_checked() -> None:
    base = {"AUTH_MODE": "local"}
    assert load_settings(base).history_retention_days == 90
    assert load_settings({**base, "HISTORY_RETENTION_DAYS": "3650"}).history_retention_days == 3650
    for bad in ("0", "3651", "ninety"):
        with pytest.raises(SettingsInvalid) as refused:
            load_settings({**base, "HISTORY_RETENTION_DAYS": bad})
        assert "HISTORY_RETENTION_DAYS" in str(refused.value)
        assert "ninety" not in str(refused.value) and "3651" not in str(refused.value)


def test_the_timer_removes_events_past_retention_in_feed_order(app: RunningApp) -> None:
    account = seed(app)  # no event
    store = app.context.accounts
    long_ago = utc_now() - timedelta(days=91)
    current = account
    # An old event, a recent one, then one whose `at` is old though it follows the recent one
    # in the feed (its time was taken before a slow commit).
    for at in (long_ago, utc_now(), long_ago):
        stamped = replace(history.event(LOCAL, account.id, "verified"), at=at)
        current = store.update_account(current.updated(status="connected"), [stamped])
    housekeeping.run(app.context, utc_now())
    body = app.http.get(app.api("/events")).json()
    # Only the oldest went: the late-stamped third event stays, behind the kept second one.
    kept = [from_rfc3339(e["at"]) for e in body["value"]]
    assert len(kept) == 2 and body["cursor"] == "3"
    assert kept[0] > utc_now() - timedelta(hours=1) and kept[1] < utc_now() - timedelta(days=90)


def test_a_feed_reader_behind_retention_gets_a_410_with_where_to_start_again(
    app: RunningApp,
) -> None:
    account = seed(app)
    store = app.context.accounts
    current = account
    for days in (91, 91, 0):
        stamped = replace(
            history.event(LOCAL, account.id, "verified"), at=utc_now() - timedelta(days=days)
        )
        current = store.update_account(current.updated(status="connected"), [stamped])
    first = app.http.get(app.api("/events"), params={"top": 1}).json()
    assert first["cursor"] == "1"  # the reader has seen the first event only
    housekeeping.run(app.context, utc_now())

    behind = app.http.get(app.api("/events"), params={"after": first["cursor"]})
    assert behind.status_code == 410
    assert behind.headers["Content-Type"] == "application/problem+json"
    problem = behind.json()
    assert problem["type"].endswith("/problems/cursor-expired") and problem["status"] == 410
    assert problem["oldestCursor"] == "2"
    again = app.http.get(app.api("/events"), params={"after": problem["oldestCursor"]})
    assert again.status_code == 200
    assert [e["accountId"] for e in again.json()["value"]] == [account.id]
    assert again.json()["cursor"] == "3"
    # A reader that kept up is not disturbed.
    assert app.http.get(app.api("/events"), params={"after": "3"}).json()["value"] == []


# --- verifications and the actor of a real caller -------------------------------------------
@pytest.fixture
def customer(sandboxed_app: Callable[..., RunningApp], sandbox: Any) -> Customer:
    return Customer(sandboxed_app(), sandbox)


def test_a_verification_is_on_record_when_the_status_changes_or_once_a_day(
    customer: Customer,
) -> None:
    customer.link_all_the_way()
    account_id = customer.account["id"]
    customer.verify()
    customer.verify()  # same day, same status: no second event
    app = customer.app
    types = [e["type"] for e in follow(app, f"/accounts/{account_id}/history")[0]]
    assert types == ["verified", "linked"]
    (verified,) = [e for e in follow(app, f"/accounts/{account_id}/history")[0][:1]]
    assert verified["status"] == "connected" and verified["previousStatus"] == "pending"
    assert verified["actor"] == {"kind": "user", "id": LOCAL}
    # The timer re-verifies an account due today: nothing new; its status changes: on record.
    customer.admin.set_directory_roles(customer.tenant_id, customer.application_id, [])
    health_check.run(app.context, budget_seconds=60)
    events = follow(app, f"/accounts/{account_id}/history")[0]
    assert events[0]["type"] == "verified" and events[0]["status"] == "action_required"
    assert events[0]["actor"] == {"kind": "timer", "id": "health_check"}


ENTRA_AUDIENCE = "api://portal-backend"


def test_the_actor_is_the_callers_oid_else_sub(
    sandboxed_app: Callable[..., RunningApp], sandbox: Any
) -> None:
    app = sandboxed_app(
        {
            "AUTH_MODE": "entra",
            "AUTH_AUDIENCE": ENTRA_AUDIENCE,
            "AUTH_ISSUER": sandbox.base_url + "/{tid}/v2.0",
            "AUTH_JWKS_URI": sandbox.base_url + "/portal/common/discovery/v2.0/keys",
        }
    )
    tid, oid, sub = str(uuid.uuid4()), str(uuid.uuid4()), "sub-" + uuid.uuid4().hex

    def headers(claims: dict[str, Any], tenant: str = tid) -> dict[str, str]:
        minted: str = sandbox.admin.mint_portal_token(tenant, ENTRA_AUDIENCE, claims=claims)
        SEEN.secrets.add(minted)
        return {"Authorization": f"Bearer {minted}"}

    with_oid, sub_only = headers({"oid": oid, "sub": sub}), headers({"oid": None, "sub": sub})
    body = {"tenantId": str(uuid.uuid4()), "applicationId": str(uuid.uuid4()), "displayName": "P"}
    made = app.http.post(app.api("/keys"), json=body, headers=with_oid).json()
    linked = app.http.post(
        app.api("/accounts"), json={**body, "keyId": made["keyId"]}, headers=with_oid
    ).json()
    assert (
        app.http.delete(app.api(f"/accounts/{linked['id']}"), headers=sub_only).status_code == 204
    )
    feed = app.http.get(app.api("/events"), headers=with_oid)
    assert [(e["type"], e["actor"]) for e in feed.json()["value"]] == [
        ("linked", {"kind": "user", "id": oid}),
        ("unlinked", {"kind": "user", "id": sub}),
    ]
    assert "Bearer" not in feed.text and "eyJ" not in feed.text
    other = headers({}, str(uuid.uuid4()))
    assert app.http.get(app.api("/events"), headers=other).json() == {"value": [], "cursor": "0"}
    history = app.http.get(app.api(f"/accounts/{linked['id']}/history"), headers=other)
    assert history.status_code == 404
