"""The tenant client's bounds: the metadata cache evicts one entry at a time, and Graph paging
follows `@odata.nextLink` a bounded number of times and only on Graph's own host.

Graph is stood in for at the HTTP boundary (a requests transport adapter that answers from a
table and records every URL asked), so the client's own code runs unchanged.
"""

from __future__ import annotations

import json
from typing import Any

import requests
from requests.adapters import BaseAdapter

from shared.adapters.tenant.client import GRAPH_MAX_PAGES, TenantClient
from shared.adapters.tenant.msal_http import METADATA_CACHE_ENTRIES, MetadataCache
from shared.core.answers import GraphAnswer

GRAPH = "https://graph.example.test"
ROLES = f"{GRAPH}/v1.0/servicePrincipals(appId='x')/memberOf/microsoft.graph.directoryRole"


class _Graph(BaseAdapter):
    """Answers GETs from `pages` (URL -> JSON body); records every URL it is asked for."""

    def __init__(self, pages: dict[str, dict[str, Any]]) -> None:
        super().__init__()
        self.pages = pages
        self.asked: list[str] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        url = str(request.url)
        self.asked.append(url)
        response = requests.Response()
        body = self.pages.get(url)
        response.status_code = 200 if body is not None else 404
        response._content = json.dumps(body or {"error": {"code": "NotFound"}}).encode()
        response.headers["Content-Type"] = "application/json"
        response.url = url
        response.request = request
        return response

    def close(self) -> None:
        pass


def _client(pages: dict[str, dict[str, Any]]) -> tuple[TenantClient, _Graph]:
    graph = _Graph(pages)
    session = requests.Session()
    session.mount("https://", graph)
    return TenantClient(session), graph


def _role(n: int) -> dict[str, Any]:
    return {"@odata.type": "#microsoft.graph.directoryRole", "roleTemplateId": f"role-{n}"}


def all_pages(client: TenantClient, url: str) -> GraphAnswer:
    """A collection read as verification reads memberOf: the first page, then the rest."""
    return client.graph_rest_of(client.graph_get(url, "token"), url, "token")


def test_every_page_is_read_and_joined() -> None:
    second = f"{ROLES}?$skiptoken=2"
    client, graph = _client(
        {
            ROLES: {"value": [_role(0), _role(1)], "@odata.nextLink": second},
            second: {"value": [_role(2)]},
        }
    )
    answer = all_pages(client, ROLES)
    assert answer.ok
    assert [r["roleTemplateId"] for r in (answer.body or {})["value"]] == [
        "role-0",
        "role-1",
        "role-2",
    ]
    assert graph.asked == [ROLES, second]


def test_a_next_link_to_another_host_is_never_followed() -> None:
    for elsewhere in (
        "https://attacker.example/v1.0/steal",
        "http://graph.example.test/v1.0/next",  # same name, not TLS
        "https://graph.example.test:8443/v1.0/next",
        "/v1.0/relative",
    ):
        client, graph = _client({ROLES: {"value": [_role(0)], "@odata.nextLink": elsewhere}})
        answer = all_pages(client, ROLES)
        assert graph.asked == [ROLES], elsewhere
        assert not answer.ok and answer.transient
        assert "another host" in (answer.message or "")
        assert (answer.body or {})["value"] == [_role(0)]  # what was read is kept


def test_the_default_port_is_the_same_host() -> None:
    second = "https://GRAPH.example.test:443/v1.0/page2"
    client, graph = _client(
        {
            ROLES: {"value": [_role(0)], "@odata.nextLink": second},
            second.replace("GRAPH", "graph"): {"value": []},
        }
    )
    assert all_pages(client, ROLES).ok
    assert len(graph.asked) == 2


def test_paging_stops_after_a_bounded_number_of_pages() -> None:
    pages = {
        f"{GRAPH}/p{n}": {"value": [_role(n)], "@odata.nextLink": f"{GRAPH}/p{n + 1}"}
        for n in range(50)
    }
    client, graph = _client(pages)
    answer = all_pages(client, f"{GRAPH}/p0")
    assert len(graph.asked) == GRAPH_MAX_PAGES
    assert not answer.ok and answer.transient and "pages" in (answer.message or "")


def test_a_failed_page_is_the_answer_with_what_was_read_before() -> None:
    client, _ = _client({ROLES: {"value": [_role(0)], "@odata.nextLink": f"{GRAPH}/gone"}})
    answer = all_pages(client, ROLES)
    assert answer.status == 404 and not answer.ok
    assert (answer.body or {})["value"] == [_role(0)]


def _response() -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    return response


def test_the_metadata_cache_evicts_the_least_recently_used_entry_one_at_a_time() -> None:
    cache = MetadataCache()
    urls = [f"https://login.example/{n}/v2.0/.well-known/openid-configuration" for n in range(3)]
    for n in range(METADATA_CACHE_ENTRIES):
        cache.put(f"https://login.example/t{n}", _response())
    cache.put(urls[0], _response())
    assert cache.get("https://login.example/t0") is None  # oldest went, alone
    assert cache.get("https://login.example/t1") is not None  # now the most recently used
    cache.put(urls[1], _response())
    assert cache.get("https://login.example/t1") is not None
    assert cache.get("https://login.example/t2") is None
    assert len(cache) == METADATA_CACHE_ENTRIES
    assert cache.get(urls[0]) is not None and cache.get(urls[1]) is not None


def test_the_fetch_locks_are_bounded_and_a_held_one_is_kept() -> None:
    cache = MetadataCache(max_entries=4)
    held = cache.lock_for("https://login.example/held")
    with held:
        for n in range(100):
            cache.lock_for(f"https://login.example/{n}")
        assert cache.fetch_locks == 4
        assert cache.lock_for("https://login.example/held") is held
