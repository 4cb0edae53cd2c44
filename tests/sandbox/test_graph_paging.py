"""The Graph stand-in pages `memberOf` as Graph does: 100 by default, `$top`, and an
`@odata.nextLink` on its own host until the last page."""

from __future__ import annotations

import uuid

import requests

from localdev.sandbox import Sandbox
from tests.sandbox.tenant_setup import Linked
from tests.sandbox.test_graph import GLOBAL_READER, call, graph_error, member_of


def test_member_of_pages_by_100_with_a_next_link_until_the_last_page(
    sb: Sandbox, http: requests.Session, linked: Linked, graph_token: str
) -> None:
    templates = [GLOBAL_READER] + [str(uuid.uuid4()) for _ in range(149)]  # GR lets it read
    sb.admin.set_directory_roles(linked.tenant_id, linked.app_id, templates)
    path = member_of(linked.app_id) + "/microsoft.graph.directoryRole"
    first = call(sb, http, path, graph_token)
    assert first.status_code == 200, first.text
    body = first.json()
    assert len(body["value"]) == 100
    next_link = body["@odata.nextLink"]
    assert next_link.startswith(f"{sb.base_url}{path}?")
    second = http.get(next_link, headers={"Authorization": f"Bearer {graph_token}"}).json()
    assert "@odata.nextLink" not in second
    seen = [r["roleTemplateId"] for r in body["value"] + second["value"]]
    assert seen == templates


def test_member_of_honours_top(
    sb: Sandbox, http: requests.Session, linked: Linked, graph_token: str
) -> None:
    templates = [GLOBAL_READER, str(uuid.uuid4()), str(uuid.uuid4())]
    sb.admin.set_directory_roles(linked.tenant_id, linked.app_id, templates)
    seen: list[str] = []
    url: str | None = f"{sb.base_url}{member_of(linked.app_id)}?$top=2"
    while url:
        page = http.get(url, headers={"Authorization": f"Bearer {graph_token}"}).json()
        seen += [r["roleTemplateId"] for r in page["value"]]
        url = page.get("@odata.nextLink")
    assert seen == templates
    bad = call(sb, http, member_of(linked.app_id) + "?$top=0", graph_token)
    graph_error(bad, 400, "BadRequest")
