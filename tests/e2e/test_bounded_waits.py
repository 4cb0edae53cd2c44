"""Every outbound wait ends by the deadline of its unit of work (API.md: "Every wait is bounded"):
Entra's OpenID metadata, Key Vault and Table Storage, whatever Retry-After they send or however
slowly they answer. (Token endpoint and Graph under a customer's verify:
tests/e2e/test_verify_hardening.py; the session itself: tests/unit/test_outbound.py.)"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from shared.adapters.accountstore.table.store import TableAccountStore, build_service
from shared.adapters.http import azure_pipeline
from shared.adapters.http.outbound import RETRY_AFTER_CAP
from shared.adapters.keystore.base import KeyLabels, KeyStore
from shared.core import certificates
from shared.core.errors import DependencyUnavailable
from shared.core.settings import TableSettings
from shared.support.deadline import deadline
from tests.conftest import RunningApp
from tests.contract.test_key_store import make_store
from tests.e2e.customer import Customer, check
from tests.unit.scripted_server import Answer, ScriptedServer, scripted_server

SLACK = 1.0  # local round trips and thread scheduling on a busy machine
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    yield from scripted_server()


class Vault:
    """A key in the sandbox's vault, under one custody, and a way to sign with it as a fresh
    process would (the first signature reads the key: a secret, or the key's public half)."""

    def __init__(self, url: str, custody: str, tmp_path: Any) -> None:
        self.url, self.custody, self.tmp_path = url, custody, tmp_path
        maker = self.store()
        self.key_id = str(uuid.uuid4())
        expires = datetime.now(UTC) + timedelta(days=1)
        labels = KeyLabels("o", str(uuid.uuid4()), str(uuid.uuid4()), "", expires)
        maker.create(
            self.key_id,
            labels,
            key_size=2048,
            certify=lambda signer, public: certificates.certify(
                signer, public, "k", validity_days=1, now=datetime.now(UTC)
            ),
        )

    def store(self) -> KeyStore:
        return make_store(self.custody, self.tmp_path, self.url)

    def sign(self) -> bytes:
        return self.store().signer(self.key_id).sign(b"x", padding.PKCS1v15(), hashes.SHA256())


@pytest.fixture(params=["vault-key", "vault-secret"])
def vault(
    request: pytest.FixtureRequest, sandbox: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> Iterator[Vault]:
    sandbox.reset()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sandbox.ca_bundle_path)
    yield Vault(sandbox.keyvault_url, request.param, tmp_path)
    sandbox.admin.clear_faults()


def keyvault_requests(sandbox: Any) -> int:
    return int(sandbox.admin.requests()["counts"]["keyvault"])


def test_a_verify_under_a_long_retry_after_on_the_tenant_metadata_ends_in_time(
    sandboxed_app: Callable[..., RunningApp], sandbox: Any
) -> None:
    linking = sandboxed_app()
    customer = Customer(linking, sandbox).link_all_the_way()
    # Another instance of the app (nothing cached yet) verifies while Entra throttles discovery.
    app = sandboxed_app({"VERIFY_TIMEOUT_SECONDS": "5"})
    customer.app = app
    sandbox.admin.add_fault("metadata", 429, retry_after=30)
    started = time.monotonic()
    try:
        report = customer.verify()
    finally:
        sandbox.admin.clear_faults()
    assert time.monotonic() - started < 5 + SLACK
    assert report["status"] == "error"
    assert check(report, "tenant")["status"] == "error"
    assert check(report, "tenant")["retryable"] is True


@pytest.mark.timeout(40)
def test_key_vault_asking_for_more_time_than_is_left_is_given_up_on_at_once(
    vault: Vault, sandbox: Any
) -> None:
    sandbox.admin.reset_requests()
    sandbox.admin.add_fault("keyvault", 429, retry_after=30)
    started = time.monotonic()
    with deadline(3), pytest.raises(DependencyUnavailable):
        vault.sign()
    assert time.monotonic() - started < 1.0  # no sleep: the vault asked for 30 s, 3 were left
    assert keyvault_requests(sandbox) == 1  # and no retry hammered a throttled vault


@pytest.mark.timeout(40)
def test_a_key_vault_retry_after_that_fits_the_deadline_is_honoured(
    vault: Vault, sandbox: Any
) -> None:
    sandbox.admin.add_fault("keyvault", 429, retry_after=1, count=1)
    started = time.monotonic()
    with deadline(5):
        assert len(vault.sign()) == 256
    assert 1.0 <= time.monotonic() - started < 5


@pytest.mark.timeout(40)
def test_a_slow_key_vault_is_given_up_on_at_the_deadline(vault: Vault, sandbox: Any) -> None:
    sandbox.admin.add_fault("keyvault", None, latency_ms=5000)
    started = time.monotonic()
    with deadline(1), pytest.raises(DependencyUnavailable):
        vault.sign()
    assert time.monotonic() - started < 1 + SLACK


def table_store(server: ScriptedServer) -> TableAccountStore:
    connection = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={AZURITE_KEY};TableEndpoint={server.url}/devstoreaccount1;"
    )
    service = build_service(TableSettings("accounts", connection_string=connection))
    return TableAccountStore(service, "accounts")


@pytest.mark.timeout(40)
def test_table_storage_asking_for_more_time_than_is_left_is_given_up_on_at_once(
    server: ScriptedServer,
) -> None:
    server.answer(Answer(503, {"Retry-After": "30"}, body=b'{"odata.error": {}}'))
    store = table_store(server)
    started = time.monotonic()
    with deadline(3), pytest.raises(DependencyUnavailable):
        store.get_account("owner", str(uuid.uuid4()))
    assert time.monotonic() - started < 1.0
    assert len(server.received) == 1


@pytest.mark.timeout(40)
def test_a_slow_table_storage_is_given_up_on_at_the_deadline(server: ScriptedServer) -> None:
    server.answer(Answer(200, delay=5.0))
    store = table_store(server)
    started = time.monotonic()
    with deadline(1), pytest.raises(DependencyUnavailable):
        store.get_account("owner", str(uuid.uuid4()))
    assert time.monotonic() - started < 1 + SLACK


def test_without_a_deadline_an_azure_retry_after_is_capped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(azure_pipeline.time, "sleep", slept.append)
    transport = azure_pipeline.DeadlineTransport()
    transport.sleep(21600)  # urllib3's and azure-core's own limit: six hours
    assert slept == [RETRY_AFTER_CAP]


@pytest.mark.timeout(40)
def test_an_unreadable_retry_after_from_table_storage_is_a_503_not_a_crash(
    server: ScriptedServer,
) -> None:
    server.answer(Answer(503, {"Retry-After": "soon"}, body=b'{"odata.error": {}}'))
    store = table_store(server)
    with deadline(5), pytest.raises(DependencyUnavailable):
        store.get_account("owner", str(uuid.uuid4()))
    assert len(server.received) == 3  # retried with backoff, as for any 503
