"""An empty query value is the same as an absent one (API.md input rules), on both stores.

The Functions host drops such a value before the worker sees it (`ToRpcHttp`), and so does the
local host; the app answers it as absent too, whoever hands it over.
"""

from __future__ import annotations

from typing import Any

import azure.functions as func

import account_history
import events
import generate_key
import link_account
from tests.conftest import RunningApp
from tests.e2e.test_accounts_api import connect, new_key


def linked(app: RunningApp) -> tuple[dict[str, Any], dict[str, Any]]:
    key = new_key(app)
    response = connect(app, key)
    assert response.status_code == 201, response.text
    account: dict[str, Any] = response.json()
    return key, account


def test_empty_values_through_the_local_host_are_absent_ones(app: RunningApp) -> None:
    key, account = linked(app)
    resource = app.http.get(app.api(f"/keys/{key['keyId']}?format="))
    assert resource.status_code == 200 and resource.json()["keyId"] == key["keyId"]
    for path in ("/accounts?top=", "/accounts?after=", "/accounts?status=", "/accounts?top=&a="):
        page = app.http.get(app.api(path))
        assert page.status_code == 200, (path, page.text)
        assert [a["id"] for a in page.json()["value"]] == [account["id"]]
    history = app.http.get(app.api(f"/accounts/{account['id']}/history?top=&after="))
    assert history.status_code == 200 and history.json()["value"][0]["type"] == "linked"
    feed = app.http.get(app.api("/events?after=&top="))
    assert feed.status_code == 200 and [e["type"] for e in feed.json()["value"]] == ["linked"]


def call(main: Any, url: str, params: dict[str, str], **route: str) -> func.HttpResponse:
    """A function called with the empty values still in the query, as no host hands them."""
    request = func.HttpRequest(
        method="GET", url=url, headers={}, params=params, route_params=route, body=b""
    )
    response: func.HttpResponse = main(request)
    return response


def test_the_app_itself_reads_an_empty_value_as_absent(app: RunningApp) -> None:
    key, account = linked(app)
    base = "http://localhost/api"
    answer = call(generate_key.main, f"{base}/keys/x?format=", {"format": ""}, keyId=key["keyId"])
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    empty = {"top": "", "after": "", "status": ""}
    assert call(link_account.main, f"{base}/accounts", empty).status_code == 200
    history = call(
        account_history.main, f"{base}/history", {"top": "", "after": ""}, id=account["id"]
    )
    assert history.status_code == 200
    assert call(events.main, f"{base}/events", {"top": "", "after": ""}).status_code == 200
