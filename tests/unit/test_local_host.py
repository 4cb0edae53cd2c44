"""The local host reads the app as the Functions host does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from localdev.functions import discover, route_prefix, werkzeug_rules
from localdev.host import LocalHost, host_query
from localdev.ncrontab import Schedule


def test_every_function_folder_is_found_with_its_trigger() -> None:
    found = {spec.name: spec for spec in discover()}
    assert set(found) == {
        "generate_key", "link_account", "verify_account", "onboarding", "health", "health_check",
        "account_history", "account_rotation", "events", "oidc_issuer",
    }  # fmt: skip
    assert found["health_check"].trigger == "timerTrigger"
    assert found["health_check"].schedule == "%HEALTH_CHECK_SCHEDULE%"
    # Every method is listed, so the function answers 405 itself (API.md input rules).
    for name in ("verify_account", "account_history", "events"):
        assert set(found[name].methods) == {
            "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE",
        }  # fmt: skip
    assert route_prefix() == "api"


@pytest.mark.parametrize(
    ("template", "rules"),
    [
        ("keys/{keyId?}", ["keys/<keyId>", "keys"]),
        ("accounts/{id}/verify", ["accounts/<id>/verify"]),
        ("items/{id:guid}", ["items/<id>"]),
        ("files/{*rest}", ["files/<path:rest>"]),
        ("health", ["health"]),
    ],
)
def test_route_templates(template: str, rules: list[str]) -> None:
    assert werkzeug_rules(template) == rules


def test_ncrontab_every_six_hours() -> None:
    schedule = Schedule("0 0 */6 * * *")
    after = schedule.next_after(datetime(2026, 11, 26, 7, 30, tzinfo=UTC))
    assert after == datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    assert schedule.matches(datetime(2026, 11, 26, 18, 0, 0, tzinfo=UTC))
    assert not schedule.matches(datetime(2026, 11, 26, 18, 0, 1, tzinfo=UTC))


def test_ncrontab_weekdays_and_lists() -> None:
    schedule = Schedule("30 15 9 * * 1-5")  # 09:15:30 on weekdays
    saturday = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    assert schedule.next_after(saturday) == datetime(2026, 11, 30, 9, 15, 30, tzinfo=UTC)
    with pytest.raises(ValueError):
        Schedule("0 0 * * *")
    with pytest.raises(ValueError):
        Schedule("0 61 * * * *")


# --- what the host hands the function (GrpcMessageConversionExtensions.ToRpcHttp) ---------------
@pytest.mark.parametrize(
    ("pairs", "query"),
    [
        ([("top", "")], {}),  # an empty value: the host leaves the name out
        ([("top", ""), ("after", ""), ("status", "connected")], {"status": "connected"}),
        ([("top", "5"), ("TOP", "6")], {"top": "5,6"}),  # one name, any case; values joined
        ([("top", ""), ("top", "1")], {"top": "1"}),  # empty values skipped in the join
        ([("top", ""), ("Top", "")], {}),
        ([("format", "cer")], {"format": "cer"}),
    ],
)
def test_the_query_is_handed_over_as_the_functions_host_hands_it(
    pairs: list[tuple[str, str]], query: dict[str, str]
) -> None:
    assert host_query(pairs) == query


ECHO = """
import json
import azure.functions as func

def main(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps({
        "query": dict(req.params), "route": dict(req.route_params), "body": len(req.get_body()),
    }), mimetype="application/json")
"""


@pytest.fixture
def echo_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The local host serving one function that answers what it was handed."""
    (tmp_path / "host.json").write_text('{"version": "2.0"}')
    folder = tmp_path / "localhost_echo_probe"
    folder.mkdir()
    (folder / "__init__.py").write_text(ECHO)
    binding = {"type": "httpTrigger", "direction": "in", "name": "req", "route": "echo/{id?}"}
    out = {"type": "http", "direction": "out", "name": "$return"}
    (folder / "function.json").write_text(json.dumps({"bindings": [binding, out]}))
    monkeypatch.syspath_prepend(str(tmp_path))
    host = LocalHost(tmp_path)
    url = host.start()
    yield url
    host.stop()


def test_the_local_host_drops_empty_query_values_as_the_host_does(echo_host: str) -> None:
    answer = requests.get(f"{echo_host}/api/echo/x?top=&after=&a=1&A=2&status=", timeout=10)
    assert answer.json() == {"query": {"a": "1,2"}, "route": {"id": "x"}, "body": 0}


def test_the_local_host_hands_over_only_a_body_of_declared_length(echo_host: str) -> None:
    sent = requests.post(f"{echo_host}/api/echo", data=b"x" * 5000, timeout=10)
    assert sent.json()["body"] == 5000
    chunked = requests.post(f"{echo_host}/api/echo", data=iter([b"x" * 100] * 50), timeout=10)
    assert chunked.request.headers["Transfer-Encoding"] == "chunked"
    assert chunked.json()["body"] == 0  # ToRpcHttp: no Content-Length, no body
    # The connection stays usable after a body the host did not hand over.
    with requests.Session() as session:
        for _ in range(3):
            session.post(f"{echo_host}/api/echo", data=iter([b"y" * 10] * 3), timeout=10)
            assert session.get(f"{echo_host}/api/echo", timeout=10).json()["body"] == 0
