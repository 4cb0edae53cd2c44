"""The key store's contract, run against local files and against Key Vault through the real SDK
(azure-keyvault-secrets) talking to the sandbox's Key Vault stand-in over HTTPS."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.keyvault.secrets._shared import http_challenge_cache

from shared import certificates
from shared.errors import ConfigurationError, DependencyUnavailable
from shared.keystore.base import KeyLabels, KeyStore, PrivateKeyMissing
from shared.keystore.keyvault import PROBE_SECRET, KeyVaultKeyStore, verifies_challenge
from shared.keystore.local import LocalKeyStore

NOW = datetime(2026, 11, 26, 17, 0, tzinfo=UTC)
NOT_AFTER = NOW + timedelta(days=365)
LABELS = KeyLabels(
    "owner-a",
    "72f988bf-86f1-41af-91ab-2d7cd011db47",
    "11111111-2222-3333-4444-555555555555",
    "AB" * 20,
    NOT_AFTER,
    store="table:devstoreaccount1/linkedaccounts",
)


class StaticCredential:
    """A TokenCredential at the SDK boundary: the stand-in needs no Entra round trip."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes = scopes
        return AccessToken("sandbox-vault-token", int(datetime.now(UTC).timestamp()) + 3600)


@pytest.fixture(scope="module")
def pem() -> bytes:
    return certificates.generate("k", validity_days=1, key_size=2048, now=NOW).private_key_pem


@pytest.fixture(params=["local", "keyvault"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[KeyStore]:
    if request.param == "local":
        yield LocalKeyStore(tmp_path / "keys")
        return
    sandbox = request.getfixturevalue("sandbox")
    sandbox.reset()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sandbox.ca_bundle_path)
    yield KeyVaultKeyStore(sandbox.keyvault_url, StaticCredential())  # type: ignore[arg-type]


def test_put_get_list_delete(store: KeyStore, pem: bytes) -> None:
    key_id = str(uuid.uuid4())
    store.put(key_id, pem, LABELS)
    assert store.get(key_id) == pem
    listed = {k.key_id: k for k in store.list()}
    assert key_id in listed and listed[key_id].created_at is not None
    assert listed[key_id].store == LABELS.store  # the sweep tells its own keys by this
    store.delete(key_id)
    with pytest.raises(PrivateKeyMissing):
        store.get(key_id)
    assert key_id not in {k.key_id for k in store.list()}
    store.delete(key_id)  # already gone is fine


def test_unknown_key_is_missing(store: KeyStore) -> None:
    with pytest.raises(PrivateKeyMissing):
        store.get(str(uuid.uuid4()))


def test_key_ids_that_are_not_uuids_never_reach_the_store(store: KeyStore, pem: bytes) -> None:
    for bad in ("../../etc/passwd", "A" * 36, ""):
        with pytest.raises(ValueError):
            store.put(bad, pem, LABELS)


def test_ping(store: KeyStore) -> None:
    store.ping()


def test_key_vault_requests_as_the_sdk_sends_them(
    sandbox: Any, monkeypatch: Any, pem: bytes
) -> None:
    sandbox.reset()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sandbox.ca_bundle_path)
    credential = StaticCredential()
    store = KeyVaultKeyStore(sandbox.keyvault_url, credential)  # type: ignore[arg-type]
    key_id = str(uuid.uuid4())
    # The SDK caches a vault's challenge for the process; forget it so this request is the
    # first one the SDK sends to the vault, as in a fresh process.
    http_challenge_cache.clear()
    store.put(key_id, pem, LABELS)
    assert credential.scopes == ("https://vault.azure.net/.default",)
    sent = sandbox.admin.keyvault_state()["requests"]
    # The first request goes without a token (nor the secret) and is challenged (401).
    anonymous = [r for r in sent if not r["authorized"]]
    assert anonymous and sent[0] is anonymous[0]
    assert [r["status"] for r in anonymous] == [401]
    (put,) = [r for r in sent if r["authorized"]]
    assert put["method"] == "PUT" and put["path"] == f"/secrets/m365link-{key_id}"
    assert put["authorized"] is True and put["status"] == 200
    assert put["apiVersion"]
    body = put["body"]
    assert body["value"] == "<redacted>"
    assert body["contentType"] == "application/x-pem-file"
    assert body["tags"] == {
        "app": "m365-link",
        "keyId": key_id,
        "owner": "owner-a",
        "tenantId": LABELS.tenant_id,
        "applicationId": LABELS.application_id,
        "thumbprint": LABELS.thumbprint,
        "store": LABELS.store,
    }
    assert body["attributes"]["exp"] == int(NOT_AFTER.timestamp())
    assert body["attributes"]["enabled"] is True
    state = sandbox.admin.keyvault_state()
    assert [s["name"] for s in state["secrets"]] == [f"m365link-{key_id}"]
    store.delete(key_id)
    state = sandbox.admin.keyvault_state()
    assert state["secrets"] == [] and len(state["deletedSecrets"]) == 1  # soft-deleted


def test_key_vault_down_is_dependency_unavailable(
    sandbox: Any, monkeypatch: Any, pem: bytes
) -> None:
    sandbox.reset()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sandbox.ca_bundle_path)
    store = KeyVaultKeyStore(sandbox.keyvault_url, StaticCredential())  # type: ignore[arg-type]
    key_id = str(uuid.uuid4())
    store.put(key_id, pem, LABELS)
    sandbox.admin.add_fault("keyvault", 503)
    try:
        for call in (
            lambda: store.put(str(uuid.uuid4()), pem, LABELS),
            lambda: store.get(key_id),
            lambda: store.delete(key_id),
            store.ping,
        ):
            with pytest.raises(DependencyUnavailable):
                call()
    finally:
        sandbox.admin.clear_faults()
    assert store.get(key_id) == pem


def test_key_vault_ping_is_one_point_read_whatever_the_vault_holds(
    sandbox: Any, monkeypatch: Any, pem: bytes
) -> None:
    sandbox.reset()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sandbox.ca_bundle_path)
    store = KeyVaultKeyStore(sandbox.keyvault_url, StaticCredential())  # type: ignore[arg-type]
    for _ in range(30):  # more than one page of the stand-in's listing
        store.put(str(uuid.uuid4()), pem, LABELS)
    sandbox.admin.reset_requests()
    store.ping()
    sent = [r for r in sandbox.admin.keyvault_state()["requests"] if r["authorized"]]
    assert [(r["method"], r["path"].rstrip("/"), r["status"]) for r in sent] == [
        ("GET", f"/secrets/{PROBE_SECRET}", 404)
    ]


def test_key_vault_refusing_the_identity_is_a_configuration_error(
    sandbox: Any, monkeypatch: Any, pem: bytes
) -> None:
    sandbox.reset()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sandbox.ca_bundle_path)
    store = KeyVaultKeyStore(sandbox.keyvault_url, StaticCredential())  # type: ignore[arg-type]
    key_id = str(uuid.uuid4())
    store.put(key_id, pem, LABELS)
    for status in (401, 403):
        sandbox.admin.add_fault("keyvault", status)
        try:
            for call in (
                lambda: store.put(str(uuid.uuid4()), pem, LABELS),
                lambda: store.get(key_id),
                lambda: store.delete(key_id),
                store.ping,
            ):
                with pytest.raises(ConfigurationError) as refused:
                    call()
                detail = refused.value.detail
                assert "Key Vault Secrets Officer" in detail and f"HTTP {status}" in detail
                assert sandbox.keyvault_url not in detail and "127.0.0.1" not in detail
        finally:
            sandbox.admin.clear_faults()
    assert store.get(key_id) == pem


@pytest.mark.parametrize(
    ("url", "verifies"),
    [
        ("https://contoso.vault.azure.net", True),
        ("https://contoso.vault.usgovcloudapi.net/", True),
        ("https://contoso.managedhsm.azure.net", True),
        ("https://contoso.privatelink.vaultcore.azure.net", True),
        ("https://mystorage.table.core.windows.net", True),  # a hostile or mistyped host
        ("https://vault.example.com:8443", True),
        ("https://10.0.0.5", True),
        ("https://localhost.example.com", True),
        ("https://127.0.0.1:8443", False),  # a stand-in on this machine
        ("https://127.1.2.3", False),
        ("https://[::1]:8443", False),
        ("https://localhost:8443", False),
    ],
)
def test_challenge_verification_is_off_only_for_loopback_hosts(url: str, verifies: bool) -> None:
    assert verifies_challenge(url) is verifies
    store = KeyVaultKeyStore(url, StaticCredential())  # type: ignore[arg-type]
    # What the SDK's challenge policy will do with the 401 it gets from this host.
    policy = store._client._client._config.authentication_policy
    assert policy._verify_challenge_resource is verifies


def test_local_list_while_keys_are_deleted_never_fails(tmp_path: Path, pem: bytes) -> None:
    store = LocalKeyStore(tmp_path / "keys")
    ids = [str(uuid.uuid4()) for _ in range(300)]
    for key_id in ids:
        store.put(key_id, pem, LABELS)
    done = threading.Event()

    def delete_all() -> None:
        for key_id in ids:
            store.delete(key_id)
        done.set()

    deleter = threading.Thread(target=delete_all)
    deleter.start()
    listings = 0
    try:
        while not done.is_set():
            listed = {k.key_id for k in store.list()}
            assert listed <= set(ids)
            listings += 1
    finally:
        deleter.join()
    assert listings > 0 and list(store.list()) == []
