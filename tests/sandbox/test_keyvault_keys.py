"""The Key Vault stand-in's keys API, driven through the real azure-keyvault-keys clients."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.core.pipeline import PipelineResponse
from azure.keyvault.keys import KeyClient, KeyReleasePolicy, KeyVaultKey
from azure.keyvault.keys.crypto import CryptographyClient, SignatureAlgorithm
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from localdev.sandbox import Sandbox
from tests.sandbox.tenant_setup import Credential

PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi"})
BEARER = {"Authorization": "Bearer sandbox-vault-token"}


class StaticCredential:
    """A TokenCredential that hands out one fixed token, as the vault accepts any bearer."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("sandbox-vault-token", int(time.time()) + 3600)


class Answers:
    """Every JSON body the vault answered to the SDK clients of a test."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []

    def __call__(self, response: PipelineResponse[Any, Any]) -> None:
        text = response.http_response.text()
        if text:
            self.bodies.append(json.loads(text))

    def private_members(self) -> set[str]:
        found: set[str] = set()

        def walk(value: Any) -> None:
            if isinstance(value, dict):
                if isinstance(value.get("kty"), str):
                    found.update(PRIVATE_MEMBERS & set(value))
                for item in value.values():
                    walk(item)
            elif isinstance(value, list):
                for item in value:
                    walk(item)

        walk(self.bodies)
        return found


@pytest.fixture
def answers() -> Answers:
    return Answers()


@pytest.fixture
def client_options(sb: Sandbox, answers: Answers) -> dict[str, Any]:
    return {
        "credential": StaticCredential(),
        "verify_challenge_resource": False,
        "connection_verify": sb.ca_bundle_path,
        "retry_total": 2,
        "retry_backoff_factor": 0.01,
        "raw_response_hook": answers,
    }


@pytest.fixture
def client(sb: Sandbox, client_options: dict[str, Any], answers: Answers) -> Iterator[KeyClient]:
    key_client = KeyClient(sb.keyvault_url, **client_options)
    yield key_client
    key_client.close()
    # Whatever a test did, no answer to the SDK ever carried a private JWK member.
    assert answers.private_members() == set()


@pytest.fixture
def crypto(client_options: dict[str, Any]) -> Iterator[Callable[[KeyVaultKey | str], Any]]:
    made: list[CryptographyClient] = []

    def build(key: KeyVaultKey | str) -> CryptographyClient:
        made.append(CryptographyClient(key, **client_options))
        return made[-1]

    yield build
    for crypto_client in made:
        crypto_client.close()


def public_key_of(key: KeyVaultKey) -> rsa.RSAPublicKey:
    n, e = getattr(key.key, "n", None), getattr(key.key, "e", None)  # JWK members, set by kty
    assert n and e
    numbers = rsa.RSAPublicNumbers(int.from_bytes(e, "big"), int.from_bytes(n, "big"))
    return numbers.public_key()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_create_get_and_sign_rs256_ps256(
    sb: Sandbox, client: KeyClient, crypto: Callable[[KeyVaultKey | str], CryptographyClient]
) -> None:
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=400)
    key = client.create_rsa_key(
        "key-1",
        size=2048,
        hardware_protected=True,
        key_operations=["sign", "verify"],
        tags={"tenantId": "t-1", "thumbprint": "ABC"},
        expires_on=expires,
    )
    assert key.id.startswith(f"{sb.keyvault_url}/keys/key-1/")
    assert key.key_type == "RSA-HSM"
    assert key.key_operations == ["sign", "verify"]
    assert key.properties.tags == {"tenantId": "t-1", "thumbprint": "ABC"}
    assert key.properties.expires_on == expires
    assert key.properties.exportable is False
    assert key.properties.enabled is True
    assert public_key_of(key).key_size == 2048
    assert all(getattr(key.key, member, None) is None for member in PRIVATE_MEMBERS)

    read = client.get_key("key-1")
    assert read.id == key.id and public_key_of(read) == public_key_of(key)
    assert client.get_key("key-1", key.properties.version).id == key.id

    digest = hashlib.sha256(b"header.payload").digest()
    signer = crypto(key)
    rs256 = signer.sign(SignatureAlgorithm.rs256, digest)
    assert rs256.key_id == key.id
    public_key_of(key).verify(
        rs256.signature, b"header.payload", padding.PKCS1v15(), hashes.SHA256()
    )
    ps256 = signer.sign(SignatureAlgorithm.ps256, digest)
    public_key_of(key).verify(
        ps256.signature,
        b"header.payload",
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
        hashes.SHA256(),
    )
    # A signature of other data does not verify: the vault signed this digest, nothing else.
    with pytest.raises(InvalidSignature):
        public_key_of(key).verify(rs256.signature, b"other", padding.PKCS1v15(), hashes.SHA256())

    [summary] = sb.admin.keyvault_keys()["keys"]
    assert summary["name"] == "key-1" and summary["hsm"] is True
    assert summary["keySize"] == 2048 and summary["signs"] == 2
    assert summary["keyOps"] == ["sign", "verify"]


def test_sdk_requests_carry_kty_key_ops_tags_and_no_exportable(
    sb: Sandbox, client: KeyClient, crypto: Callable[[KeyVaultKey | str], CryptographyClient]
) -> None:
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    key = client.create_rsa_key(
        "key-1", size=3072, key_operations=["sign", "verify"], tags={"a": "b"}, expires_on=expires
    )
    crypto(key.id).sign(SignatureAlgorithm.ps256, hashlib.sha256(b"x").digest())

    recorded = sb.admin.keyvault_keys()["requests"]
    assert recorded == [r for r in sb.keyvault.requests if r["path"].startswith("/keys")]
    assert all(r["status"] == 401 for r in recorded if not r["authorized"])
    authorized = [r for r in recorded if r["authorized"]]
    assert [(r["method"], r["path"], r["status"]) for r in authorized] == [
        ("POST", "/keys/key-1/create", 200),
        ("GET", f"/keys/key-1/{key.properties.version}", 200),  # CryptographyClient reads it once
        ("POST", f"/keys/key-1/{key.properties.version}/sign", 200),
    ]
    versions = {r["apiVersion"] for r in recorded}
    assert len(versions) == 1 and versions != {None}
    assert all(r["query"]["api-version"] == r["apiVersion"] for r in recorded)
    create = authorized[0]
    assert create["body"] == {
        "kty": "RSA",
        "key_size": 3072,
        "key_ops": ["sign", "verify"],
        "attributes": {"exp": int(expires.timestamp())},
        "tags": {"a": "b"},
    }
    assert "exportable" not in json.dumps(create["body"])
    assert "release_policy" not in create["body"]
    sign = authorized[2]
    assert sign["body"] == {"alg": "PS256", "value": b64url(hashlib.sha256(b"x").digest())}
    assert all("Authorization" not in r["headers"] for r in recorded)
    assert "sandbox-vault-token" not in repr(recorded)
    assert public_key_of(key).key_size == 3072


def test_key_vault_private_key_self_signs_a_certificate(
    sb: Sandbox, client: KeyClient, crypto: Callable[[KeyVaultKey | str], CryptographyClient]
) -> None:
    key = client.create_rsa_key("key-1", size=2048, key_operations=["sign", "verify"])
    private_key = crypto(key).create_rsa_private_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Portal reader")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key_of(key))
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=365))
        .sign(private_key, hashes.SHA256())
    )
    certificate.verify_directly_issued_by(certificate)
    assert certificate.public_key() == public_key_of(key)
    [summary] = sb.admin.keyvault_keys()["keys"]
    assert summary["signs"] == 1
    [sign] = [r for r in sb.keyvault.requests if r["path"].endswith("/sign")]
    assert sign["body"]["alg"] == "RS256"


def test_sign_is_refused_without_the_sign_operation_or_when_disabled(
    sb: Sandbox,
    client: KeyClient,
    crypto: Callable[[KeyVaultKey | str], CryptographyClient],
    http: requests.Session,
) -> None:
    key = client.create_rsa_key("key-1", key_operations=["verify"])
    digest = hashlib.sha256(b"x").digest()
    with pytest.raises(HttpResponseError) as raised:
        crypto(key).sign(SignatureAlgorithm.rs256, digest)
    assert raised.value.status_code == 403
    assert raised.value.error is not None and raised.value.error.code == "Forbidden"
    answer = http.post(
        f"{key.id}/sign",
        params={"api-version": "7.6"},
        json={"alg": "RS256", "value": b64url(digest)},
        headers=BEARER,
    )
    assert answer.status_code == 403
    assert answer.json() == {
        "error": {
            "code": "Forbidden",
            "message": "Operation sign is not permitted on this key.",
            "innererror": {"code": "KeyOperationForbidden"},
        }
    }

    signing = client.create_rsa_key("key-2", key_operations=["sign", "verify"])
    client.update_key_properties("key-2", enabled=False)
    with pytest.raises(HttpResponseError) as raised:
        crypto(signing).sign(SignatureAlgorithm.rs256, digest)
    assert raised.value.status_code == 403
    assert all(k["signs"] == 0 for k in sb.admin.keyvault_keys()["keys"])


def test_exportable_keys_and_release_policies_are_refused(sb: Sandbox, client: KeyClient) -> None:
    with pytest.raises(HttpResponseError) as raised:
        client.create_rsa_key("key-1", exportable=True)
    assert raised.value.status_code == 400
    assert raised.value.error is not None and raised.value.error.code == "BadParameter"
    assert "Exportable keys must have release policy" in str(raised.value.message)
    policy = KeyReleasePolicy(b'{"anyOf": [], "version": "1.0.0"}')
    with pytest.raises(HttpResponseError) as raised:
        client.create_rsa_key("key-1", hardware_protected=True, release_policy=policy)
    assert raised.value.status_code == 400
    with pytest.raises(HttpResponseError) as raised:
        client.create_rsa_key(
            "key-1", hardware_protected=True, exportable=True, release_policy=policy
        )
    assert raised.value.status_code == 400
    assert list(client.list_properties_of_keys()) == []
    assert sb.admin.keyvault_keys()["keys"] == []


def test_bad_create_parameters(sb: Sandbox, client: KeyClient) -> None:
    with pytest.raises(HttpResponseError) as raised:
        client.create_rsa_key("key-1", size=1024)
    assert raised.value.status_code == 400
    with pytest.raises(HttpResponseError) as raised:
        client.create_ec_key("key-1")
    assert raised.value.status_code == 400
    with pytest.raises(HttpResponseError) as raised:
        client.create_rsa_key("bad_name")
    assert raised.value.status_code == 400
    with pytest.raises(HttpResponseError) as raised:
        client.create_rsa_key("key-1", key_operations=["sign", "fly"])
    assert raised.value.status_code == 400
    # A standard vault has no HSM: the stand-in models the SKU as `premium`.
    sb.keyvault.keys.premium = False
    with pytest.raises(HttpResponseError) as raised:
        client.create_rsa_key("key-1", hardware_protected=True)
    assert raised.value.status_code == 400
    assert client.create_rsa_key("key-1").key_type == "RSA"
    assert sb.admin.keyvault_keys()["premium"] is False


def test_sign_checks_algorithm_digest_and_takes_the_latest_version(
    sb: Sandbox, client: KeyClient, http: requests.Session
) -> None:
    client.create_rsa_key("key-1", key_operations=["sign"])
    latest = client.create_rsa_key("key-1", key_operations=["sign"])
    url = f"{sb.keyvault_url}/keys/key-1"
    params = {"api-version": "7.6"}

    def sign(path: str, alg: str, digest: bytes) -> requests.Response:
        return http.post(
            f"{url}{path}",
            params=params,
            json={"alg": alg, "value": b64url(digest)},
            headers=BEARER,
        )

    for path in ("/sign", "//sign"):
        answer = sign(path, "RS384", hashlib.sha384(b"x").digest())
        assert answer.status_code == 200
        assert answer.json()["kid"] == latest.id
        public_key_of(latest).verify(
            base64.urlsafe_b64decode(answer.json()["value"] + "=="),
            b"x",
            padding.PKCS1v15(),
            hashes.SHA384(),
        )
    answer = sign("/sign", "PS512", hashlib.sha512(b"x").digest())
    public_key_of(latest).verify(
        base64.urlsafe_b64decode(answer.json()["value"] + "=="),
        b"x",
        padding.PSS(mgf=padding.MGF1(hashes.SHA512()), salt_length=64),
        hashes.SHA512(),
    )
    for alg, digest in (("RS256", b"\0" * 31), ("PS256", b"\0" * 48), ("ES256", b"\0" * 32)):
        answer = sign("/sign", alg, digest)
        assert answer.status_code == 400
        assert answer.json()["error"]["code"] == "BadParameter"
    answer = sign("/0123456789abcdef0123456789abcdef/sign", "RS256", b"\0" * 32)
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "KeyNotFound"
    assert [k["signs"] for k in sb.admin.keyvault_keys()["keys"]] == [3]


def test_delete_soft_deletes_blocks_the_name_until_purged(
    sb: Sandbox, client: KeyClient, crypto: Callable[[KeyVaultKey | str], CryptographyClient]
) -> None:
    key = client.create_rsa_key("key-1", key_operations=["sign", "verify"], tags={"a": "b"})
    poller = client.begin_delete_key("key-1")
    deleted = poller.result()
    assert deleted.name == "key-1" and deleted.id == key.id
    assert deleted.recovery_id == f"{sb.keyvault_url}/deletedkeys/key-1"
    assert deleted.deleted_date is not None and deleted.scheduled_purge_date is not None
    assert deleted.scheduled_purge_date - deleted.deleted_date == timedelta(days=90)
    with pytest.raises(ResourceNotFoundError):
        client.get_key("key-1")
    with pytest.raises(ResourceNotFoundError):
        crypto(key).sign(SignatureAlgorithm.rs256, hashlib.sha256(b"x").digest())
    assert client.get_deleted_key("key-1").properties.tags == {"a": "b"}
    assert [d.name for d in client.list_deleted_keys()] == ["key-1"]
    assert list(client.list_properties_of_keys()) == []

    with pytest.raises(ResourceExistsError) as raised:
        client.create_rsa_key("key-1")
    assert raised.value.status_code == 409
    assert raised.value.error is not None and raised.value.error.code == "Conflict"
    assert "deleted but recoverable" in str(raised.value.message)
    state = sb.admin.keyvault_keys()
    assert state["keys"] == [] and [k["name"] for k in state["deletedKeys"]] == ["key-1"]

    client.purge_deleted_key("key-1")
    with pytest.raises(ResourceNotFoundError):
        client.get_deleted_key("key-1")
    assert client.create_rsa_key("key-1").id != key.id


def test_recover_brings_the_same_key_back(
    client: KeyClient, crypto: Callable[[KeyVaultKey | str], CryptographyClient]
) -> None:
    key = client.create_rsa_key("key-1", key_operations=["sign", "verify"])
    client.begin_delete_key("key-1").wait()
    recovered = client.begin_recover_deleted_key("key-1").result()
    assert recovered.id == key.id
    digest = hashlib.sha256(b"x").digest()
    result = crypto(recovered).sign(SignatureAlgorithm.rs256, digest)
    public_key_of(key).verify(result.signature, b"x", padding.PKCS1v15(), hashes.SHA256())


def test_lists_page_through_next_link_and_versions(client: KeyClient) -> None:
    for index in range(7):
        client.create_rsa_key(f"key-{index}", tags={"i": str(index)})
    names = [p.name for p in client.list_properties_of_keys(max_page_size=3)]
    assert names == [f"key-{index}" for index in range(7)]
    second = client.create_rsa_key("key-0")
    versions = [p.version for p in client.list_properties_of_key_versions("key-0")]
    assert len(versions) == 2 and versions[-1] == second.properties.version
    for index in range(3):
        client.begin_delete_key(f"key-{index}").wait()
    assert [d.name for d in client.list_deleted_keys(max_page_size=2)] == [
        "key-0",
        "key-1",
        "key-2",
    ]


def test_unauthenticated_key_request_gets_the_challenge(
    sb: Sandbox, http: requests.Session
) -> None:
    answer = http.post(
        f"{sb.keyvault_url}/keys/key-1/create", params={"api-version": "7.6"}, json={"kty": "RSA"}
    )
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith('Bearer authorization="https://login.')
    assert sb.admin.keyvault_keys()["keys"] == []
    missing = http.get(
        f"{sb.keyvault_url}/keys/key-1/", params={"api-version": "7.6"}, headers=BEARER
    )
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "KeyNotFound"


def test_vault_down_during_sign_then_back(
    sb: Sandbox, client: KeyClient, crypto: Callable[[KeyVaultKey | str], CryptographyClient]
) -> None:
    key = client.create_rsa_key("key-1", key_operations=["sign", "verify"])
    signer = crypto(key)
    digest = hashlib.sha256(b"x").digest()
    sb.admin.add_fault("keyvault", 503)
    with pytest.raises(HttpResponseError) as raised:
        signer.sign(SignatureAlgorithm.rs256, digest)
    assert raised.value.status_code == 503
    assert sb.admin.keyvault_keys()["keys"][0]["signs"] == 0
    sb.admin.clear_faults()
    assert signer.sign(SignatureAlgorithm.rs256, digest).signature


def test_verify_route_and_validity_window(
    sb: Sandbox, client: KeyClient, http: requests.Session
) -> None:
    def post(url: str, body: dict[str, str]) -> requests.Response:
        return http.post(url, params={"api-version": "7.6"}, headers=BEARER, json=body)

    key = client.create_rsa_key("key-1", key_operations=["sign", "verify"])
    digest = hashlib.sha256(b"x").digest()
    signature = post(f"{key.id}/sign", {"alg": "PS256", "value": b64url(digest)}).json()["value"]
    for sent, expected in ((digest, True), (hashlib.sha256(b"y").digest(), False)):
        body = {"alg": "PS256", "digest": b64url(sent), "value": signature}
        verified = post(f"{key.id}/verify", body)
        assert verified.status_code == 200 and verified.json() == {"value": expected}

    # Key Vault signs only inside a key's validity window (nbf ≤ now < exp).
    tomorrow, yesterday = (datetime.now(UTC) + timedelta(days=d) for d in (1, -1))
    future = client.create_rsa_key("key-2", key_operations=["sign"], not_before=tomorrow)
    expired = client.create_rsa_key("key-3", key_operations=["sign"], expires_on=yesterday)
    for refused_key in (future, expired):
        refused = post(f"{refused_key.id}/sign", {"alg": "RS256", "value": b64url(digest)})
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "Forbidden"
    assert [k["signs"] for k in sb.admin.keyvault_keys()["keys"]] == [1, 0, 0]


@pytest.mark.parametrize("algorithm", ["RS256", "PS256"])
def test_sandbox_entra_accepts_an_assertion_signed_by_a_vault_key(
    sb: Sandbox,
    client: KeyClient,
    crypto: Callable[[KeyVaultKey | str], CryptographyClient],
    post_assertion: Callable[..., requests.Response],
    algorithm: str,
) -> None:
    key = client.create_rsa_key("key-1", key_operations=["sign", "verify"])
    vault_key = crypto(key).create_rsa_private_key()
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Portal reader")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key_of(key))
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=365))
        .sign(vault_key, hashes.SHA256())
    )
    credential = Credential(vault_key, certificate)
    tenant = sb.admin.create_tenant("Contoso", domains=["contoso.onmicrosoft.com"])
    app = sb.admin.create_application(tenant["tenantId"], "Portal reader")
    sb.admin.upload_certificate(tenant["tenantId"], app["appId"], credential.cert_pem)
    headers = {} if algorithm == "RS256" else {"x5t": None, "x5t#S256": b64url(credential.sha256)}

    answer = post_assertion(
        tenant["tenantId"], app["appId"], credential, algorithm=algorithm, headers=headers
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["access_token"]
    signs = [r for r in sb.keyvault.requests if r["path"].endswith("/sign")]
    assert [r["body"]["alg"] for r in signs] == ["RS256", algorithm]  # certificate, assertion


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/keys/key-1/create", b"not json"),
        ("/keys/key-1/create", b"[]"),
        ("/keys/key-1/create", b'{"kty": {"a": 1}}'),
        ("/keys/key-1/create", b'{"kty": "RSA", "key_size": [2048]}'),
        ("/keys/key-1/create", b'{"kty": "RSA", "key_size": 2048.0}'),
        ("/keys/key-1/create", b'{"kty": "RSA", "key_ops": [["sign"]]}'),
        ("/keys/key-1/create", b'{"kty": "RSA", "attributes": []}'),
        ("/keys/key-1/create", b'{"kty": "RSA", "attributes": {"exp": "soon"}}'),
        ("/keys/key-1/create", b'{"kty": "RSA", "tags": {"a": 1}}'),
        ("/keys/bad_name/create", b'{"kty": "RSA"}'),
        ("/keys/existing/sign", b'{"alg": ["RS256"], "value": "AA"}'),
        ("/keys/existing/sign", b'{"alg": "RS256", "value": "not base64url!"}'),
        ("/keys/existing/sign", b'{"alg": "RS256", "value": 5}'),
        ("/keys/existing/verify", b'{"alg": "RS256", "digest": "AA", "value": "AA"}'),
    ],
)
def test_malformed_key_requests_get_bad_parameter(
    sb: Sandbox, client: KeyClient, http: requests.Session, path: str, body: bytes
) -> None:
    client.create_rsa_key("existing", key_operations=["sign", "verify"])
    answer = http.post(
        f"{sb.keyvault_url}{path}",
        params={"api-version": "7.6"},
        data=body,
        headers={**BEARER, "Content-Type": "application/json"},
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "BadParameter"
    assert [k["name"] for k in sb.admin.keyvault_keys()["keys"]] == ["existing"]


@pytest.mark.parametrize("size", [2048, 3072])
def test_the_sign_fault_answers_a_short_or_a_strangers_signature_until_cleared(
    sb: Sandbox,
    client: KeyClient,
    crypto: Callable[[KeyVaultKey | str], CryptographyClient],
    size: int,
) -> None:
    key = client.create_rsa_key("key-1", size=size, key_operations=["sign", "verify"])
    public, signer = public_key_of(key), crypto(key)
    digest = hashlib.sha256(b"header.payload").digest()

    def signature() -> bytes:
        return bytes(signer.sign(SignatureAlgorithm.rs256, digest).signature)

    sb.admin.set_keyvault_sign_fault("short")
    assert sb.admin.keyvault_keys()["signFault"] == "short"
    assert len(signature()) == 10
    sb.admin.set_keyvault_sign_fault("other-key")
    stranger = signature()
    assert len(stranger) == size // 8  # well-formed, so only verifying it tells
    with pytest.raises(InvalidSignature):
        public.verify(stranger, b"header.payload", padding.PKCS1v15(), hashes.SHA256())
    sb.admin.clear_faults()
    assert sb.admin.keyvault_keys()["signFault"] is None
    public.verify(signature(), b"header.payload", padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(Exception, match="mode must be one of"):
        sb.admin.set_keyvault_sign_fault("garbage")
