"""A server that trickles its answer, one byte every 0.2 s, is given up on at the deadline of the
unit of work: the deadline bounds the whole answer (status line, headers, body), not each read
of the socket. Here the clients built on `requests` (the outbound session: Entra's OpenID
metadata and token endpoint through MSAL, Graph reads and `$batch`; the caller-identity JWKS);
the Azure SDK clients: tests/unit/test_trickle_azure.py.

Issue 18 item 9: a body sent one byte at a time took 14.5 s under a 2 s deadline.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from shared.adapters.http.outbound import make_session
from shared.adapters.identity.jwks import JWKS_TIMEOUT, JwksCache
from shared.adapters.tenant import graph_batch
from shared.adapters.tenant.client import TenantClient
from shared.core.errors import DependencyUnavailable
from shared.support.deadline import deadline
from tests.unit.scripted_server import Answer, ScriptedServer, scripted_server

DEADLINE = 2.0
MARGIN = 0.75  # loopback round trips and scheduling on a busy two-core machine
PAUSE = 0.2  # between two bytes of the answer
# About 12 s when trickled: far past the deadline, so only a bound on the whole answer passes.
BODY = json.dumps({"value": [], "padding": "x" * 40}).encode()
TRICKLED = Answer(200, body=BODY, trickle=PAUSE)
TENANT = str(uuid.uuid4())

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    yield from scripted_server()


@pytest.fixture
def tls_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedServer]:
    for server in scripted_server(tls=True):
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", server.ca_path)
        yield server


@contextmanager
def ends_in_time(limit: float = DEADLINE) -> Iterator[None]:
    """The block ends (raising or not) within `limit` and the margin."""
    started = time.monotonic()
    try:
        yield
    finally:
        elapsed = time.monotonic() - started
        print(f"ended after {elapsed:.2f} s (limit {limit} s)")  # measured before and after
    assert elapsed < limit + MARGIN


@pytest.mark.parametrize("head", [False, True], ids=["body", "status-line-and-headers"])
def test_trickled_tenant_metadata_ends_at_the_deadline(server: ScriptedServer, head: bool) -> None:
    server.answer(Answer(200, body=BODY, trickle=PAUSE, trickle_head=head))
    client = TenantClient(make_session())
    with ends_in_time(), deadline(DEADLINE):
        answer = client.metadata(server.url, TENANT)
    assert answer.transient and answer.document is None  # the tenant check's `error`


def _openid_configuration(base: str) -> bytes:
    authority = f"{base}/{TENANT}"
    return json.dumps(
        {
            "issuer": f"{authority}/v2.0",
            "authorization_endpoint": f"{authority}/oauth2/v2.0/authorize",
            "token_endpoint": f"{authority}/oauth2/v2.0/token",
            "jwks_uri": f"{authority}/discovery/v2.0/keys",
        }
    ).encode()


def test_a_trickled_token_answer_ends_at_the_deadline(tls_server: ScriptedServer) -> None:
    # MSAL insists on an HTTPS authority: discovery answers at once, the token trickles.
    tls_server.answer(Answer(200, body=_openid_configuration(tls_server.url)), TRICKLED)
    client = TenantClient(make_session())
    with ends_in_time(), deadline(DEADLINE):
        answer = client.token(
            cache_key=("account", "key"),
            client_id=str(uuid.uuid4()),
            authority=f"{tls_server.url}/{TENANT}",
            scope="https://graph.microsoft.com/.default",
            assertion=lambda context: "an.assertion.here",
            fresh=True,
        )
    assert answer.transient and answer.access_token is None
    assert [path for _, path, _ in tls_server.received][-1].endswith("/oauth2/v2.0/token")


def test_a_trickled_graph_read_ends_at_the_deadline(server: ScriptedServer) -> None:
    server.answer(TRICKLED)
    client = TenantClient(make_session())
    with ends_in_time(), deadline(DEADLINE):
        answer = client.graph_get(f"{server.url}/v1.0/organization", "token")
    assert answer.transient and answer.status is None


def test_a_trickled_graph_batch_ends_at_the_deadline(server: ScriptedServer) -> None:
    server.answer(TRICKLED)
    with ends_in_time(), deadline(DEADLINE):
        answers = graph_batch.send(make_session(), server.url, "token", {"org": "/organization"})
    assert answers["org"].status is None  # no HTTP answer: a transient failure for its checks


def test_a_trickled_key_set_ends_at_the_callers_deadline(server: ScriptedServer) -> None:
    server.answer(TRICKLED)
    cache = JwksCache(f"{server.url}/discovery/v2.0/keys")
    with ends_in_time(), deadline(DEADLINE), pytest.raises(DependencyUnavailable):
        cache.key("kid")


def test_a_trickled_key_set_ends_within_its_own_bound_without_a_deadline(
    server: ScriptedServer,
) -> None:
    server.answer(TRICKLED)
    cache = JwksCache(f"{server.url}/discovery/v2.0/keys")
    with ends_in_time(sum(JWKS_TIMEOUT)), pytest.raises(DependencyUnavailable):
        cache.key("kid")


def test_an_answer_in_time_is_read_whole(server: ScriptedServer) -> None:
    # The bound cuts only what overruns: a slow but timely answer arrives intact.
    body = json.dumps({"value": [1, 2, 3]}).encode()
    server.answer(Answer(200, body=body, trickle=0.01))
    with deadline(DEADLINE):
        response = make_session().get(f"{server.url}/v1.0/organization")
    assert response.json() == {"value": [1, 2, 3]}


def test_a_key_set_larger_than_any_key_set_is_not_read_whole(server: ScriptedServer) -> None:
    server.answer(Answer(200, body=b" " * 65536, repeat=1024))  # 64 MiB of nothing
    cache = JwksCache(f"{server.url}/discovery/v2.0/keys")
    with ends_in_time(), pytest.raises(DependencyUnavailable):
        cache.key("kid")
    (sent,) = server.wait_sent(1)
    assert sent < 24 * 2**20  # cut off past JWKS_MAX_BYTES, plus what the sockets buffer
