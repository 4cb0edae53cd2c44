"""A trickled answer (one byte every 0.2 s) from Table Storage or Key Vault ends at the deadline
of the unit of work, through the Azure SDK's own pipeline (azure-core's requests transport): the
deadline bounds the whole answer, not each read of the socket. The `requests` clients:
tests/unit/test_trickle.py."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from shared.core.errors import DependencyUnavailable
from shared.support.deadline import deadline
from tests.contract.test_key_store import make_store
from tests.e2e.test_bounded_waits import table_store
from tests.unit.scripted_server import Answer, ScriptedServer, scripted_server
from tests.unit.test_trickle import DEADLINE, PAUSE, ends_in_time

pytestmark = pytest.mark.timeout(60)
# "Not found": answered whole, the account simply does not exist; trickled, it never arrives.
NOT_FOUND = json.dumps(
    {"odata.error": {"code": "ResourceNotFound", "message": {"value": "x" * 40}}}
).encode()
# Key Vault's first answer to a request without a token: the SDK fetches one and sends again.
CHALLENGE = Answer(
    401,
    {
        "WWW-Authenticate": 'Bearer authorization="https://login.microsoftonline.com/'
        '72f988bf-86f1-41af-91ab-2d7cd011db47", resource="https://vault.azure.net"'
    },
    body=b'{"error": {"code": "Unauthorized"}}',
)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    yield from scripted_server()


@pytest.fixture
def tls_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedServer]:
    for server in scripted_server(tls=True):
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", server.ca_path)
        yield server


@pytest.mark.parametrize("head", [False, True], ids=["body", "status-line-and-headers"])
def test_a_trickled_table_storage_answer_ends_at_the_deadline(
    server: ScriptedServer, head: bool
) -> None:
    server.answer(Answer(404, body=NOT_FOUND, trickle=PAUSE, trickle_head=head))
    store = table_store(server)
    with ends_in_time(), deadline(DEADLINE), pytest.raises(DependencyUnavailable):
        store.get_account("owner", str(uuid.uuid4()))


@pytest.mark.parametrize("custody", ["vault-key", "vault-secret"])
def test_a_trickled_key_vault_answer_ends_at_the_deadline(
    tls_server: ScriptedServer, custody: str, tmp_path: object
) -> None:
    body = json.dumps({"value": "x" * 60, "id": f"{tls_server.url}/secrets/s/v"}).encode()
    tls_server.answer(CHALLENGE, Answer(200, body=body, trickle=PAUSE))
    store = make_store(custody, tmp_path, tls_server.url)  # type: ignore[arg-type]
    with ends_in_time(), deadline(DEADLINE), pytest.raises(DependencyUnavailable):
        store.signer(str(uuid.uuid4()))
    assert len(tls_server.received) == 2  # the challenge, then the answer that trickled


@pytest.mark.parametrize("custody", ["vault-key", "vault-secret"])
def test_a_huge_key_vault_answer_is_cut_off_not_read_whole(
    tls_server: ScriptedServer, custody: str, tmp_path: object
) -> None:
    # 64 MiB where Key Vault answers a few kB: the client stops reading past its cap (1 MiB),
    # so the server cannot write more than that and what the sockets buffer.
    huge = Answer(200, body=b"0" * 65536, repeat=1024)
    tls_server.answer(CHALLENGE, huge)
    store = make_store(custody, tmp_path, tls_server.url)  # type: ignore[arg-type]
    with ends_in_time(), deadline(DEADLINE), pytest.raises(DependencyUnavailable):
        store.signer(str(uuid.uuid4()))
    _challenge, *answers = tls_server.wait_sent(len(tls_server.received))
    print(f"the server wrote {[round(n / 2**20, 1) for n in answers]} MiB of 64")
    assert answers and all(n < 24 * 2**20 for n in answers)  # each attempt cut off
