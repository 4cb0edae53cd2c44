"""The key store's contract, run against local files and against Key Vault through the real SDK
(azure-keyvault-secrets) talking to the sandbox's Key Vault stand-in over HTTPS."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken

from shared import certificates
from shared.errors import DependencyUnavailable
from shared.keystore.base import KeyLabels, KeyStore, PrivateKeyMissing
from shared.keystore.keyvault import KeyVaultKeyStore
from shared.keystore.local import LocalKeyStore

NOW = datetime(2026, 11, 26, 17, 0, tzinfo=UTC)
NOT_AFTER = NOW + timedelta(days=365)
LABELS = KeyLabels(
    "owner-a",
    "72f988bf-86f1-41af-91ab-2d7cd011db47",
    "11111111-2222-3333-4444-555555555555",
    "AB" * 20,
    NOT_AFTER,
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
    store.put(key_id, pem, LABELS)
    assert credential.scopes == ("https://vault.azure.net/.default",)
    sent = sandbox.admin.keyvault_state()["requests"]
    # The SDK's first request to a vault goes without a token and is challenged (401); the
    # challenge is cached per vault for the process, so only the first test sees it.
    assert all(r["status"] == 401 for r in sent if not r["authorized"])
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
