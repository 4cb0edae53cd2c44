"""The key store's contract, run against all three custodies: local files, Key Vault secrets
(azure-keyvault-secrets) and non-exportable Key Vault keys (azure-keyvault-keys), the last two
through the real SDKs talking to the sandbox's Key Vault stand-in over HTTPS.

The contract: a store makes a key and signs its certificate with it, hands out a key object that
signs and does nothing else, deletes, lists and pings. No call ever returns key material.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import pickle
import sys
import threading
import types
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.keyvault.secrets._shared import http_challenge_cache
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from shared.adapters.keystore.base import KeyLabels, KeyStore, PrivateKeyMissing
from shared.adapters.keystore.local import LocalKeyStore
from shared.adapters.keystore.signing_key import SigningOnlyKey
from shared.adapters.keystore.vault_common import verifies_challenge
from shared.adapters.keystore.vault_key import PROBE_KEY, KeyVaultKeyStore
from shared.adapters.keystore.vault_secret import PROBE_SECRET, KeyVaultSecretKeyStore
from shared.core import certificates
from shared.core.errors import ConfigurationError, DependencyUnavailable

NOW = datetime(2026, 11, 26, 17, 0, tzinfo=UTC)
NOT_AFTER = NOW + timedelta(days=365)
LABELS = KeyLabels(
    "owner-a",
    "72f988bf-86f1-41af-91ab-2d7cd011db47",
    "11111111-2222-3333-4444-555555555555",
    "",
    NOT_AFTER,
    store="table:devstoreaccount1/linkedaccounts",
)
CUSTODIES = ["local", "vault-secret", "vault-key"]
ONE_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


class StaticCredential:
    """A TokenCredential at the SDK boundary: the stand-in needs no Entra round trip."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes = scopes
        return AccessToken("sandbox-vault-token", int(datetime.now(UTC).timestamp()) + 3600)


def certify(signer: rsa.RSAPrivateKey, public: rsa.RSAPublicKey) -> x509.Certificate:
    return certificates.certify(signer, public, "contract", validity_days=365, now=NOW)


def make_store(custody: str, folder: Path, vault_url: str = "", **options: Any) -> KeyStore:
    if custody == "local":
        return LocalKeyStore(folder, **options)
    if custody == "vault-secret":
        return KeyVaultSecretKeyStore(vault_url, StaticCredential(), **options)  # type: ignore[arg-type]
    return KeyVaultKeyStore(vault_url, StaticCredential(), **options)  # type: ignore[arg-type]


@pytest.fixture
def vault(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    sandbox.reset()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sandbox.ca_bundle_path)
    return sandbox


@pytest.fixture(params=CUSTODIES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyStore]:
    vault_url = ""
    if request.param != "local":
        vault_url = request.getfixturevalue("vault").keyvault_url
    yield make_store(request.param, tmp_path / "keys", vault_url)


def test_a_new_key_certifies_signs_lists_and_deletes(store: KeyStore) -> None:
    key_id = str(uuid.uuid4())
    cert = store.create(key_id, LABELS, key_size=2048, certify=certify)
    pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
    cert.verify_directly_issued_by(cert)  # self-signed by the key the store made
    signer = store.signer(key_id)
    assert certificates.signer_matches(signer, pem)
    listed = {k.key_id: k for k in store.list()}
    assert key_id in listed and listed[key_id].created_at is not None
    assert listed[key_id].store == LABELS.store  # the sweep tells its own keys by this
    store.delete(key_id)
    with pytest.raises(PrivateKeyMissing):
        fresh = store.signer(key_id)
        fresh.sign(b"x", padding.PKCS1v15(), hashes.SHA256())
    assert key_id not in {k.key_id for k in store.list()}
    store.delete(key_id)  # already gone is fine


def _module_dicts() -> set[int]:
    return {id(vars(module)) for module in list(sys.modules.values()) if module is not None}


def _held_by(value: Any) -> list[Any]:
    """What `value` holds: its attributes (`__dict__`, slots), closures' cells, the `__self__`
    and `__func__` of a method, and whatever the garbage collector sees it refer to."""
    held: list[Any] = list(gc.get_referents(value))
    for cls in type(value).__mro__:
        for name in cls.__dict__.get("__slots__", ()):
            held.append(getattr(value, name, None))
    for name in ("__self__", "__func__", "__wrapped__"):
        held.append(getattr(value, name, None))
    for cell in getattr(value, "__closure__", None) or ():
        with contextlib.suppress(ValueError):  # an empty cell
            held.append(cell.cell_contents)
    return held


def key_material_reachable_from(root: object, depth: int = 12) -> list[str]:
    """What private key material a walk of everything `root` holds finds, `depth` steps deep.

    Classes, modules and function globals are not followed: through them every object of the
    interpreter is reachable, whatever a signer holds. Other sign-only keys are walked through,
    not counted."""
    module_dicts, seen, found = _module_dicts(), {id(root)}, []
    layer: list[Any] = [root]
    for _ in range(depth):
        following: list[Any] = []
        for value in layer:
            if isinstance(value, rsa.RSAPrivateKey) and not isinstance(value, SigningOnlyKey):
                found.append(f"a private key object ({type(value).__name__})")
            elif isinstance(value, bytes | str) and "PRIVATE KEY" in str(value):
                found.append("a PEM private key")
            if isinstance(value, type | types.ModuleType) or id(value) in module_dicts:
                continue
            for item in _held_by(value):
                if item is not None and id(item) not in seen:
                    seen.add(id(item))
                    following.append(item)
        layer = following
    return found


def test_the_signer_never_gives_its_key_away(store: KeyStore) -> None:
    key_id = str(uuid.uuid4())
    store.create(key_id, LABELS, key_size=2048, certify=certify)
    signer = store.signer(key_id)
    signer.sign(b"x", padding.PKCS1v15(), hashes.SHA256())  # a signer that has signed
    for export in (
        lambda: signer.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        signer.private_numbers,
        lambda: signer.decrypt(b"x" * 256, padding.PKCS1v15()),
        # Neither copied nor serialised: a copy or a pickle would carry the key.
        lambda: copy.copy(signer),
        lambda: copy.deepcopy(signer),
        *(lambda protocol=protocol: pickle.dumps(signer, protocol) for protocol in range(6)),
        lambda: signer.__reduce__(),
        lambda: signer.__getstate__(),
    ):
        with pytest.raises(TypeError):
            export()
    # No attribute path either (issue 18: `signer._sign.__self__.private_bytes()` gave the PEM).
    assert key_material_reachable_from(signer) == []
    assert key_material_reachable_from(store) == []  # nor from the store that handed it out


def test_the_walk_finds_a_key_held_in_any_of_these_ways() -> None:
    """The walk above is able to see what it looks for (a key in an attribute, a closure, a
    bound method, a slot, a container, a PEM), so its empty answer means something."""
    pem = ONE_KEY.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )

    class Slotted:
        __slots__ = ("held",)

        def __init__(self, held: object) -> None:
            self.held = held

    def closure() -> Any:
        key = ONE_KEY
        return lambda: key

    holders = [
        types.SimpleNamespace(sign=ONE_KEY.sign),
        types.SimpleNamespace(deeper=types.SimpleNamespace(pem=pem)),
        closure(),
        Slotted(ONE_KEY),
        {"keys": [(ONE_KEY,)]},
    ]
    for holder in holders:
        assert key_material_reachable_from(holder), holder


def test_unknown_key_is_missing(store: KeyStore) -> None:
    with pytest.raises(PrivateKeyMissing):
        signer = store.signer(str(uuid.uuid4()))
        signer.sign(b"x", padding.PKCS1v15(), hashes.SHA256())


def test_key_ids_that_are_not_uuids_never_reach_the_store(store: KeyStore) -> None:
    for bad in ("../../etc/passwd", "A" * 36, "", str(uuid.uuid4()) + "\n"):
        with pytest.raises(ValueError):
            store.create(bad, LABELS, key_size=2048, certify=certify)
        with pytest.raises(ValueError):
            store.signer(bad)


def test_ping(store: KeyStore) -> None:
    store.ping()


def test_a_certify_that_fails_leaves_no_usable_key(store: KeyStore) -> None:
    key_id = str(uuid.uuid4())

    def refuse(signer: rsa.RSAPrivateKey, public: rsa.RSAPublicKey) -> x509.Certificate:
        raise RuntimeError("no certificate")

    with pytest.raises(RuntimeError):
        store.create(key_id, LABELS, key_size=2048, certify=refuse)
    assert key_id not in {k.key_id for k in store.list()}


def test_a_certificate_whose_self_signature_does_not_verify_is_never_kept(
    store: KeyStore,
) -> None:
    # A signer that signs for another key (as a vault answering with another key's signature
    # would): the certificate builder refuses what it made, and the store keeps nothing.
    key_id = str(uuid.uuid4())

    def with_a_stranger(signer: rsa.RSAPrivateKey, public: rsa.RSAPublicKey) -> x509.Certificate:
        stranger = SigningOnlyKey(ONE_KEY.sign, ONE_KEY.public_key())
        return certificates.certify(stranger, public, "contract", validity_days=365, now=NOW)

    with pytest.raises(DependencyUnavailable):
        store.create(key_id, LABELS, key_size=2048, certify=with_a_stranger)
    assert key_id not in {k.key_id for k in store.list()}


# --- Key Vault: what the SDKs send ------------------------------------------------------------
def _authorized(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in requests if r["authorized"]]


def expected_tags(key_id: str, **more: str) -> dict[str, str]:
    """The tags a key's secret or vault key carries: whose key it is, for an operator."""
    return {
        "app": "m365-link",
        "keyId": key_id,
        "owner": "owner-a",
        "tenantId": LABELS.tenant_id,
        "applicationId": LABELS.application_id,
        "store": LABELS.store,
        **more,
    }


def test_vault_secret_requests_as_the_sdk_sends_them(vault: Any, tmp_path: Path) -> None:
    credential = StaticCredential()
    store = KeyVaultSecretKeyStore(vault.keyvault_url, credential)  # type: ignore[arg-type]
    key_id = str(uuid.uuid4())
    # The SDK caches a vault's challenge for the process; forget it so this request is the
    # first one the SDK sends to the vault, as in a fresh process.
    http_challenge_cache.clear()
    cert = store.create(key_id, LABELS, key_size=2048, certify=certify)
    assert credential.scopes == ("https://vault.azure.net/.default",)
    sent = vault.admin.keyvault_state()["requests"]
    # The first request goes without a token (nor the secret) and is challenged (401).
    anonymous = [r for r in sent if not r["authorized"]]
    assert anonymous and sent[0] is anonymous[0]
    assert [r["status"] for r in anonymous] == [401]
    (put,) = _authorized(sent)
    assert put["method"] == "PUT" and put["path"] == f"/secrets/m365link-{key_id}"
    assert put["status"] == 200 and put["apiVersion"]
    body = put["body"]
    assert body["value"] == "<redacted>"
    assert body["contentType"] == "application/x-pem-file"
    thumbprint = cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303
    assert body["tags"] == expected_tags(key_id, thumbprint=thumbprint)
    assert body["attributes"]["exp"] == int(NOT_AFTER.timestamp())
    assert body["attributes"]["enabled"] is True
    state = vault.admin.keyvault_state()
    assert [s["name"] for s in state["secrets"]] == [f"m365link-{key_id}"]
    store.delete(key_id)
    state = vault.admin.keyvault_state()
    assert state["secrets"] == [] and len(state["deletedSecrets"]) == 1  # soft-deleted


@pytest.mark.parametrize("hsm", [False, True])
def test_vault_key_requests_as_the_sdk_sends_them(vault: Any, hsm: bool) -> None:
    store = KeyVaultKeyStore(vault.keyvault_url, StaticCredential(), hsm=hsm)  # type: ignore[arg-type]
    key_id = str(uuid.uuid4())
    cert = store.create(key_id, LABELS, key_size=3072, certify=certify)
    state = vault.admin.keyvault_keys()
    sent = _authorized(state["requests"])
    create, sign = sent
    assert create["method"] == "POST" and create["path"] == f"/keys/m365link-{key_id}/create"
    assert create["apiVersion"] and create["status"] == 200
    body = create["body"]
    assert body["kty"] == ("RSA-HSM" if hsm else "RSA") and body["key_size"] == 3072
    assert sorted(body["key_ops"]) == ["sign", "verify"]
    assert "exportable" not in body.get("attributes", {}) and "release_policy" not in body
    assert body["attributes"]["exp"] == int(NOT_AFTER.timestamp())
    assert body["tags"] == expected_tags(key_id)
    # The certificate was signed by Key Vault: one `sign`, RS256 over a SHA-256 digest.
    assert sign["method"] == "POST" and sign["path"].endswith("/sign")
    assert sign["body"]["alg"] == "RS256"
    (made,) = state["keys"]
    assert made["name"] == f"m365link-{key_id}" and made["signs"] == 1
    assert made["hsm"] is hsm and made["keySize"] == 3072
    assert isinstance(cert.public_key(), rsa.RSAPublicKey)
    # Nothing went to the secrets API: no copy of the key exists as a secret.
    assert vault.admin.keyvault_state()["secrets"] == []


def test_vault_key_signing_costs_one_sign_and_a_fresh_process_one_read(vault: Any) -> None:
    key_id = str(uuid.uuid4())
    maker = KeyVaultKeyStore(vault.keyvault_url, StaticCredential())  # type: ignore[arg-type]
    pem = (
        maker.create(key_id, LABELS, key_size=2048, certify=certify)
        .public_bytes(serialization.Encoding.PEM)
        .decode("ascii")
    )
    vault.admin.reset_requests()
    assert certificates.signer_matches(maker.signer(key_id), pem)
    paths = [(r["method"], r["path"]) for r in _authorized(vault.admin.keyvault_keys()["requests"])]
    assert len(paths) == 1 and paths[0][1].endswith("/sign")  # the signer was kept
    vault.admin.reset_requests()
    other = KeyVaultKeyStore(vault.keyvault_url, StaticCredential())  # type: ignore[arg-type]
    assert certificates.signer_matches(other.signer(key_id), pem)
    assert certificates.signer_matches(other.signer(key_id), pem)
    kinds = [
        "sign" if r["path"].endswith("/sign") else r["method"]
        for r in _authorized(vault.admin.keyvault_keys()["requests"])
    ]
    assert kinds == ["GET", "sign", "sign"]  # the public half once, then signatures only


@pytest.mark.parametrize("custody", ["vault-secret", "vault-key"])
def test_key_vault_down_is_dependency_unavailable(vault: Any, custody: str, tmp_path: Path) -> None:
    store = make_store(custody, tmp_path, vault.keyvault_url)
    key_id = str(uuid.uuid4())
    store.create(key_id, LABELS, key_size=2048, certify=certify)
    cold = make_store(custody, tmp_path, vault.keyvault_url)
    vault.admin.add_fault("keyvault", 503)
    try:
        for call in (
            lambda: store.create(str(uuid.uuid4()), LABELS, key_size=2048, certify=certify),
            lambda: cold.signer(key_id).sign(b"x", padding.PKCS1v15(), hashes.SHA256()),
            lambda: store.delete(key_id),
            store.ping,
        ):
            with pytest.raises(DependencyUnavailable):
                call()
    finally:
        vault.admin.clear_faults()
    cold.signer(key_id).sign(b"x", padding.PKCS1v15(), hashes.SHA256())


@pytest.mark.parametrize(
    ("custody", "probe", "collection"),
    [("vault-secret", PROBE_SECRET, "secrets"), ("vault-key", PROBE_KEY, "keys")],
)
def test_key_vault_ping_is_one_point_read_whatever_the_vault_holds(
    vault: Any, custody: str, probe: str, collection: str, tmp_path: Path
) -> None:
    options = {"generate": lambda size: ONE_KEY} if custody == "vault-secret" else {}
    store = make_store(custody, tmp_path, vault.keyvault_url, **options)
    for _ in range(30):  # more than one page of the stand-in's listing
        store.create(str(uuid.uuid4()), LABELS, key_size=2048, certify=certify)
    vault.admin.reset_requests()
    store.ping()
    sent = _authorized(vault.admin.keyvault_state()["requests"])
    assert [(r["method"], r["path"].rstrip("/"), r["status"]) for r in sent] == [
        ("GET", f"/{collection}/{probe}", 404)
    ]


@pytest.mark.parametrize(
    ("custody", "role"),
    [("vault-secret", "Key Vault Secrets Officer"), ("vault-key", "Key Vault Crypto Officer")],
)
def test_key_vault_refusing_the_identity_is_a_configuration_error(
    vault: Any, custody: str, role: str, tmp_path: Path
) -> None:
    store = make_store(custody, tmp_path, vault.keyvault_url)
    key_id = str(uuid.uuid4())
    store.create(key_id, LABELS, key_size=2048, certify=certify)
    for status in (401, 403):
        cold = make_store(custody, tmp_path, vault.keyvault_url)
        vault.admin.add_fault("keyvault", status)
        try:
            for call in (
                lambda: store.create(str(uuid.uuid4()), LABELS, key_size=2048, certify=certify),
                lambda cold=cold: cold.signer(key_id).sign(
                    b"x", padding.PKCS1v15(), hashes.SHA256()
                ),
                lambda: store.delete(key_id),
                store.ping,
            ):
                with pytest.raises(ConfigurationError) as refused:
                    call()
                detail = refused.value.detail
                assert role in detail and f"HTTP {status}" in detail
                assert vault.keyvault_url not in detail and "127.0.0.1" not in detail
        finally:
            vault.admin.clear_faults()
    store.signer(key_id).sign(b"x", padding.PKCS1v15(), hashes.SHA256())


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
    for store in (
        KeyVaultSecretKeyStore(url, StaticCredential()),  # type: ignore[arg-type]
        KeyVaultKeyStore(url, StaticCredential()),  # type: ignore[arg-type]
    ):
        # What the SDK's challenge policy will do with the 401 it gets from this host.
        policy = store._client._client._config.authentication_policy  # type: ignore[attr-defined]
        assert policy._verify_challenge_resource is verifies


def test_local_list_while_keys_are_deleted_never_fails(tmp_path: Path) -> None:
    store = LocalKeyStore(tmp_path / "keys", generate=lambda size: ONE_KEY)
    ids = [str(uuid.uuid4()) for _ in range(300)]
    for key_id in ids:
        store.create(key_id, LABELS, key_size=2048, certify=certify)
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


def test_local_key_files_are_readable_by_the_owner_alone(tmp_path: Path) -> None:
    store = LocalKeyStore(tmp_path / "keys")
    key_id = str(uuid.uuid4())
    store.create(key_id, LABELS, key_size=2048, certify=certify)
    assert (tmp_path / "keys").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "keys" / f"{key_id}.pem").stat().st_mode & 0o777 == 0o600
