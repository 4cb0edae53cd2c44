"""The app on Table Storage (Azurite), through a small HTTP relay that can drop an answer: what the
customer sees when the table disappears, when a write lands but its answer is lost, and what a
health probe costs."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import pytest
import requests
from azure.data.tables import TableServiceClient

from localdev.azurite import AZURITE_KEY, Azurite
from shared.core import certificates
from tests.conftest import RunningApp

BODY = {
    "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47",
    "applicationId": "11111111-2222-3333-4444-555555555555",
    "displayName": "Prod",
}
_HOP = {"host", "connection", "content-length", "transfer-encoding", "keep-alive"}
_BUSY = b'{"odata.error":{"code":"ServerBusy","message":{"lang":"en-US","value":"Busy."}}}'


class Relay(ThreadingHTTPServer):
    """Forwards every request to Azurite. With `lose_next_insert` set, the next entity insert is
    done by Azurite but its answer is lost: replaced by a 503 (`loss = "busy"`, a front end that
    timed out after the write) or by a dropped connection (`loss = "silent"`)."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.upstream = upstream
        self.lose_next_insert = threading.Event()
        self.loss = "busy"
        self.seen: list[tuple[str, str]] = []
        self.session = requests.Session()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Relay

    def _relay(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
        answer = self.server.session.request(
            self.command, self.server.upstream + self.path, data=body, headers=headers
        )
        path = unquote(self.path.split("?")[0])
        self.server.seen.append((self.command, path))
        status, content = answer.status_code, answer.content
        out = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP}
        out.pop("Content-Encoding", None)  # requests already decoded the body
        is_insert = self.command == "POST" and not path.endswith(("/Tables", "/$batch"))
        if is_insert and status == 201 and self.server.lose_next_insert.is_set():
            self.server.lose_next_insert.clear()
            if self.server.loss == "silent":
                self.close_connection = True
                return
            status, content = 503, _BUSY
            out = {"Content-Type": "application/json;odata=minimalmetadata"}
        self.send_response(status)
        for name, value in out.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_MERGE = _relay

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return


@pytest.fixture
def relay(azurite: Azurite) -> Iterator[Relay]:
    server = Relay(f"http://127.0.0.1:{azurite.port}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def table_name() -> str:
    return "t" + uuid.uuid4().hex[:20]


@pytest.fixture
def app(start_app: Callable[..., RunningApp], relay: Relay, table_name: str) -> RunningApp:
    connection = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={AZURITE_KEY};TableEndpoint={relay.url}/devstoreaccount1;"
    )
    return start_app({"ACCOUNTS_STORAGE": connection, "ACCOUNTS_TABLE_NAME": table_name})


def test_a_table_deleted_under_the_running_app_is_made_again(
    app: RunningApp, azurite: Azurite, table_name: str
) -> None:
    first = app.http.post(app.api("/keys"), json=BODY)
    assert first.status_code == 201
    TableServiceClient.from_connection_string(azurite.connection_string).delete_table(table_name)
    # The next calls answer as an empty store would, and writes work again.
    listing = app.http.get(app.api("/accounts"))
    assert listing.status_code == 200 and listing.json() == {"value": []}
    assert app.http.get(app.api(f"/keys/{first.json()['keyId']}")).status_code == 404
    again = app.http.post(app.api("/keys"), json=BODY)
    assert again.status_code == 201
    assert app.http.get(app.api(f"/keys/{again.json()['keyId']}")).status_code == 200
    link = {**BODY, "keyId": again.json()["keyId"]}
    assert app.http.post(app.api("/accounts"), json=link).status_code == 201


@pytest.mark.parametrize("loss", ["busy", "silent"])
def test_a_key_record_written_despite_an_error_keeps_its_private_key(
    app: RunningApp, relay: Relay, loss: str
) -> None:
    assert app.http.get(app.api("/accounts")).status_code == 200  # the table exists
    relay.loss = loss
    relay.lose_next_insert.set()
    response = app.http.post(app.api("/keys"), json=BODY)
    assert not relay.lose_next_insert.is_set()  # the insert was done, its answer lost
    assert response.status_code in (201, 503)
    (record,) = app.context.accounts.list_keys()
    # The record points at a private key that is there: a Connect with it would work.
    assert certificates.signer_matches(
        app.context.keys.signer(record.key_id), record.certificate_pem
    )
    if response.status_code == 201:
        assert response.json()["keyId"] == record.key_id
    else:
        assert int(response.headers["Retry-After"]) > 0


def test_the_health_probe_is_one_point_read(app: RunningApp, relay: Relay, table_name: str) -> None:
    for n in range(5):  # rows the old scan would have walked through
        app.http.post(app.api("/keys"), json={**BODY, "applicationId": str(uuid.UUID(int=n))})
    relay.seen.clear()
    health = app.http.get(app.api("/health"))
    assert health.status_code == 200
    assert health.json()["accountStore"] == {
        "backend": "table",
        "status": "ok",
        "durationMs": health.json()["accountStore"]["durationMs"],
    }
    assert relay.seen == [
        ("GET", f"/devstoreaccount1/{table_name}(PartitionKey='health',RowKey='probe')")
    ]
