"""The Key Vault stand-in, driven through the real azure-keyvault-secrets client."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.keyvault.secrets import SecretClient

from localdev.sandbox import Sandbox

SECRET_VALUE = "-----BEGIN PRIVATE KEY-----\nnot-a-real-key\n-----END PRIVATE KEY-----\n"


class StaticCredential:
    """A TokenCredential that hands out one fixed token, as the vault accepts any bearer."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken("sandbox-vault-token", int(time.time()) + 3600)


@pytest.fixture
def credential_for_vault() -> StaticCredential:
    return StaticCredential()


@pytest.fixture
def client(sb: Sandbox, credential_for_vault: StaticCredential) -> Iterator[SecretClient]:
    secret_client = SecretClient(
        sb.keyvault_url,
        credential=credential_for_vault,
        verify_challenge_resource=False,
        connection_verify=sb.ca_bundle_path,
        retry_total=2,
        retry_backoff_factor=0.01,
    )
    yield secret_client
    secret_client.close()


def test_set_get_list_delete(
    sb: Sandbox, client: SecretClient, credential_for_vault: StaticCredential
) -> None:
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=400)
    stored = client.set_secret(
        "key-1",
        SECRET_VALUE,
        tags={"tenantId": "t-1", "thumbprint": "ABC"},
        content_type="application/x-pem-file",
        expires_on=expires,
    )
    assert stored.value == SECRET_VALUE
    assert stored.id.startswith(f"{sb.keyvault_url}/secrets/key-1/")
    assert stored.properties.version
    assert credential_for_vault.scopes == [("https://vault.azure.net/.default",)]

    read = client.get_secret("key-1")
    assert read.value == SECRET_VALUE
    assert read.properties.tags == {"tenantId": "t-1", "thumbprint": "ABC"}
    assert read.properties.content_type == "application/x-pem-file"
    assert read.properties.expires_on == expires
    assert client.get_secret("key-1", stored.properties.version).value == SECRET_VALUE

    client.set_secret("key-2", "second")
    assert sorted(p.name for p in client.list_properties_of_secrets()) == ["key-1", "key-2"]

    poller = client.begin_delete_secret("key-1")
    deleted = poller.result()
    poller.wait()
    assert deleted.name == "key-1"
    assert deleted.recovery_id == f"{sb.keyvault_url}/deletedsecrets/key-1"
    assert deleted.deleted_date is not None and deleted.scheduled_purge_date is not None
    with pytest.raises(ResourceNotFoundError):
        client.get_secret("key-1")
    assert [p.name for p in client.list_properties_of_secrets()] == ["key-2"]
    assert [d.name for d in client.list_deleted_secrets()] == ["key-1"]


def test_requests_are_recorded_without_values_or_tokens(sb: Sandbox, client: SecretClient) -> None:
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    client.set_secret("key-1", SECRET_VALUE, tags={"a": "b"}, content_type="text/plain",
                      expires_on=expires)  # fmt: skip
    client.get_secret("key-1")
    client.begin_delete_secret("key-1").wait()

    recorded = sb.keyvault.requests
    # The SDK caches the vault's challenge per host: only its first request goes anonymous.
    assert all(r["status"] == 401 for r in recorded if not r["authorized"])
    authorized = [r for r in recorded if r["authorized"]]
    put = authorized[0]
    assert put["method"] == "PUT" and put["path"] == "/secrets/key-1" and put["status"] == 200
    assert put["apiVersion"] and put["query"]["api-version"] == put["apiVersion"]
    assert put["body"] == {
        "value": "<redacted>",
        "tags": {"a": "b"},
        "contentType": "text/plain",
        "attributes": {"exp": int(expires.timestamp())},
    }
    assert [(r["method"], r["path"]) for r in authorized[1:]] == [
        ("GET", "/secrets/key-1/"),
        ("DELETE", "/secrets/key-1"),
        ("GET", "/deletedsecrets/key-1"),
    ]
    dump = repr(recorded) + repr(sb.admin.keyvault_state())
    assert "not-a-real-key" not in dump
    assert "sandbox-vault-token" not in dump
    assert all("Authorization" not in r["headers"] for r in recorded)

    state = sb.admin.keyvault_state()
    assert state["secrets"] == []
    [deleted] = state["deletedSecrets"]
    assert deleted["name"] == "key-1" and deleted["tags"] == {"a": "b"}
    assert deleted["attributes"]["exp"] == int(expires.timestamp())
    assert len(state["requests"]) == len(recorded)
    assert sb.admin.requests()["counts"]["keyvault"] == len(recorded)


def test_deleted_name_cannot_be_reused_until_purged(client: SecretClient) -> None:
    client.set_secret("key-1", "v")
    client.begin_delete_secret("key-1").wait()
    with pytest.raises(ResourceExistsError) as raised:
        client.set_secret("key-1", "v2")
    assert raised.value.status_code == 409
    assert "deleted but recoverable" in str(raised.value.message)
    client.purge_deleted_secret("key-1")
    with pytest.raises(ResourceNotFoundError):
        client.get_deleted_secret("key-1")
    assert client.set_secret("key-1", "v3").value == "v3"


def test_recover_and_versions(client: SecretClient) -> None:
    first = client.set_secret("key-1", "one")
    client.set_secret("key-1", "two")
    assert client.get_secret("key-1").value == "two"
    assert client.get_secret("key-1", first.properties.version).value == "one"
    assert len(list(client.list_properties_of_secret_versions("key-1"))) == 2
    client.begin_delete_secret("key-1").wait()
    client.begin_recover_deleted_secret("key-1").wait()
    assert client.get_secret("key-1").value == "two"


def test_list_pages_through_next_link(client: SecretClient) -> None:
    for index in range(30):
        client.set_secret(f"key-{index:02d}", "v")
    names = [p.name for p in client.list_properties_of_secrets(max_page_size=7)]
    assert names == [f"key-{index:02d}" for index in range(30)]


def test_update_properties(client: SecretClient) -> None:
    client.set_secret("key-1", "v", tags={"a": "1"})
    updated = client.update_secret_properties("key-1", tags={"a": "2"}, enabled=False)
    assert updated.tags == {"a": "2"} and updated.enabled is False
    with pytest.raises(HttpResponseError) as raised:
        client.get_secret("key-1")
    assert raised.value.status_code == 403


def test_limits(client: SecretClient) -> None:
    with pytest.raises(HttpResponseError) as raised:
        client.set_secret("key-1", "x" * (25 * 1024 + 1))
    assert raised.value.status_code == 400
    assert raised.value.error.code == "BadParameter"
    with pytest.raises(HttpResponseError) as raised:
        client.set_secret("bad_name", "v")
    assert raised.value.status_code == 400
    assert client.set_secret("key-1", "x" * (25 * 1024)).name == "key-1"


def test_unauthenticated_request_gets_the_challenge(sb: Sandbox, http: requests.Session) -> None:
    response = http.get(f"{sb.keyvault_url}/secrets/key-1/", params={"api-version": "7.6"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        'Bearer authorization="https://login.microsoftonline.com/'
        '72f988bf-86f1-41af-91ab-2d7cd011db47", resource="https://vault.azure.net"'
    )
    missing = http.get(
        f"{sb.keyvault_url}/secrets/key-1/",
        params={"api-version": "7.6"},
        headers={"Authorization": "Bearer x"},
    )
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "SecretNotFound"


def test_vault_down_then_back(sb: Sandbox, client: SecretClient) -> None:
    sb.admin.add_fault("keyvault", 503)
    with pytest.raises(HttpResponseError) as raised:
        client.set_secret("key-1", "v")
    assert raised.value.status_code == 503
    assert raised.value.error.code == "ServiceUnavailable"
    sb.admin.clear_faults()
    assert client.set_secret("key-1", "v").value == "v"


def test_one_throttled_call_is_retried_by_the_sdk(sb: Sandbox, client: SecretClient) -> None:
    client.set_secret("key-1", "v")
    sb.admin.add_fault("keyvault", 429, retry_after=0, count=1)
    assert client.get_secret("key-1").value == "v"
    statuses = [r["status"] for r in sb.keyvault.requests if r["method"] == "GET"]
    assert statuses == [429, 200]
