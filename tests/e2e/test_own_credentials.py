"""The app's own writes on its app registration (addKey / removeKey), against the sandbox tenant,
through the real TenantClient, MSAL-acquired tokens and proofs the sandbox verifies for real."""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.adapters.http.outbound import make_session
from shared.adapters.keystore.base import KeyLabels
from shared.adapters.keystore.vault_key import KeyVaultKeyStore
from shared.adapters.tenant.assertion import KeyUnavailable, assertion_callable
from shared.adapters.tenant.client import TenantClient
from shared.adapters.tenant.graph_write import GraphWrite
from shared.adapters.tenant.own_credentials import (
    PROOF_AUDIENCE,
    add_certificate,
    application_object_id,
    remove_certificate,
)
from shared.core import certificates
from shared.core.errors import DependencyUnavailable
from shared.support.timefmt import utc_now
from tests.conftest import SEEN
from tests.contract.test_key_store import StaticCredential
from tests.e2e.customer import faulted

GRAPH_SCOPE = "https://graph.microsoft.com/.default"


@dataclass(frozen=True)
class Key:
    signer: rsa.RSAPrivateKey
    thumbprint: str
    certificate_pem: str


def key_of(pair: certificates.KeyPair) -> Key:
    signer = serialization.load_pem_private_key(pair.private_key_pem, password=None)
    assert isinstance(signer, rsa.RSAPrivateKey)
    return Key(signer, pair.info.thumbprint, pair.info.certificate_pem)


def make_key(validity_days: int = 365) -> Key:
    pair = certificates.generate(
        "Renewal", validity_days=validity_days, key_size=2048, now=utc_now()
    )
    return key_of(pair)


@pytest.fixture(scope="module")
def current() -> Key:
    return make_key()


@pytest.fixture(scope="module")
def new() -> Key:
    return make_key()


@pytest.fixture(scope="module")
def stranger() -> Key:
    return make_key()


class Sent:
    """What left through the session: every proof and bearer token (so no log may hold them,
    here and in zz_final/test_no_secrets) and the JSON body of each Graph write."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, dict[str, Any]]] = []
        self.secrets: set[str] = set()

    def hook(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        request = response.request
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            self.secrets.add(auth[7:])
        body = request.body
        if request.method == "POST" and "/v1.0/applications/" in (request.url or "") and body:
            parsed = json.loads(body)
            self.writes.append((str(request.url), parsed))
            self.secrets.add(parsed["proof"])
        if "/oauth2/v2.0/token" in response.url and response.ok:
            self.secrets.add(response.json()["access_token"])
        SEEN.secrets.update(self.secrets)


@pytest.fixture
def sent() -> Sent:
    return Sent()


@pytest.fixture
def client(sandbox: Any, monkeypatch: pytest.MonkeyPatch, sent: Sent) -> TenantClient:
    sandbox.reset()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sandbox.ca_bundle_path)
    session = make_session(retries=1, backoff=0.1)
    session.hooks["response"].append(sent.hook)
    return TenantClient(session)


@pytest.fixture(autouse=True)
def _nothing_secret_logged(caplog: pytest.LogCaptureFixture, sent: Sent) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    yield
    text = caplog.text
    assert not [s for s in sent.secrets if s in text or s.rsplit(".", 1)[-1] in text]


@dataclass
class App:
    """The customer's app registration, linked with the current key, and a token for it."""

    sandbox: Any
    client: TenantClient
    tenant_id: str
    app_id: str
    object_id: str

    @property
    def graph(self) -> str:
        return str(self.sandbox.base_url)

    def token(self, key: Key) -> str:
        answer = self.token_answer(key)
        assert answer.access_token, answer
        return answer.access_token

    def token_answer(self, key: Key) -> Any:
        endpoint = f"{self.sandbox.base_url}/{self.tenant_id}/oauth2/v2.0/token"
        return self.client.token(
            cache_key=(str(uuid.uuid4()),),
            client_id=self.app_id,
            authority=f"{self.sandbox.base_url}/{self.tenant_id}",
            scope=GRAPH_SCOPE,
            assertion=assertion_callable(
                lambda: key.signer,
                client_id=self.app_id,
                thumbprint=key.thumbprint,
                token_endpoint=endpoint,
            ),
            fresh=True,
        )

    def thumbprints(self) -> list[str]:
        app = self.sandbox.admin.get_application(self.tenant_id, self.app_id)
        return [c["thumbprint"] for c in app["certificates"]]

    def key_id_of(self, thumbprint: str) -> str:
        app = self.sandbox.admin.get_application(self.tenant_id, self.app_id)
        key_id: str = next(c["keyId"] for c in app["certificates"] if c["thumbprint"] == thumbprint)
        return key_id

    def graph_writes(self) -> list[dict[str, Any]]:
        return [
            r
            for r in self.sandbox.admin.requests()["value"]
            if r["target"] == "graph" and r["method"] == "POST"
        ]

    def add(self, key: Key, *, signer: Key, token: str) -> GraphWrite:
        return add_certificate(
            self.client,
            self.graph,
            token,
            object_id=self.object_id,
            certificate_pem=key.certificate_pem,
            signer=signer.signer,
            signer_thumbprint=signer.thumbprint,
        )

    def remove(self, thumbprint: str, *, signer: Key, token: str) -> GraphWrite:
        return remove_certificate(
            self.client,
            self.graph,
            token,
            object_id=self.object_id,
            thumbprint=thumbprint,
            signer=signer.signer,
            signer_thumbprint=signer.thumbprint,
        )


def register(sandbox: Any, client: TenantClient, certificate_pem: str) -> App:
    """An app registration as the linking guide leaves it: the certificate, Global Reader (which
    reads application objects), no propagation delay."""
    tenant = sandbox.admin.create_tenant("Contoso", domains=[f"c{uuid.uuid4().hex[:8]}.com"])
    tid = tenant["tenantId"]
    sandbox.admin.update_tenant(tid, certificate_propagation_seconds=0)
    registration = sandbox.admin.create_application(tid, "Governance portal")
    app_id = registration["appId"]
    sandbox.admin.upload_certificate(tid, app_id, certificate_pem)
    sandbox.admin.set_directory_roles(tid, app_id, ["Global Reader"])
    object_id = sandbox.admin.get_application(tid, app_id)["objectId"]
    return App(sandbox, client, tid, app_id, object_id)


@pytest.fixture
def app(sandbox: Any, client: TenantClient, current: Key) -> App:
    return register(sandbox, client, current.certificate_pem)


# --- addKey ------------------------------------------------------------------------------------
def test_add_key_signed_by_the_current_key_lets_the_new_key_get_a_token(
    app: App, current: Key, new: Key, sent: Sent
) -> None:
    token = app.token(current)
    assert not app.token_answer(new).access_token  # not on the registration yet

    write = app.add(new, signer=current, token=token)

    assert write.outcome == "done", write.words()
    assert write.status == 200
    assert write.key_credential_id == app.key_id_of(new.thumbprint)
    assert app.thumbprints() == [current.thumbprint, new.thumbprint]
    assert app.token_answer(new).access_token  # Entra takes the new certificate
    assert write.words() == f"Microsoft Graph accepted addKey (keyId {write.key_credential_id})."
    # What went to Graph: the new certificate's DER, and a proof the current key signed.
    [(url, body)] = sent.writes
    assert url == f"{app.graph}/v1.0/applications/{app.object_id}/addKey"
    der = x509.load_pem_x509_certificate(new.certificate_pem.encode()).public_bytes(
        serialization.Encoding.DER
    )
    assert body["keyCredential"]["key"] == base64.b64encode(der).decode()
    assert body["passwordCredential"] is None
    claims = jwt.decode(
        body["proof"],
        current.signer.public_key(),
        algorithms=["RS256"],
        audience=PROOF_AUDIENCE,
        issuer=app.object_id,
    )
    assert claims["exp"] - claims["nbf"] <= 600
    assert jwt.get_unverified_header(body["proof"])["x5t"] == x5t_of(current)


def x5t_of(key: Key) -> str:
    return base64.urlsafe_b64encode(bytes.fromhex(key.thumbprint)).rstrip(b"=").decode()


def test_a_proof_signed_by_a_key_whose_certificate_is_not_on_the_app_is_refused(
    app: App, current: Key, new: Key, stranger: Key
) -> None:
    write = app.add(new, signer=stranger, token=app.token(current))
    assert (write.outcome, write.status, write.code) == (
        "refused",
        401,
        "Authentication_MissingOrMalformed",
    )
    assert write.words() == (
        "Microsoft Graph refused addKey (HTTP 401 Authentication_MissingOrMalformed): "
        "Access Token missing or malformed."
    )
    assert app.thumbprints() == [current.thumbprint]


def test_a_lifetime_policy_refuses_a_longer_certificate_in_graphs_words(
    app: App, current: Key, new: Key
) -> None:
    app.sandbox.admin.set_certificate_policy(app.tenant_id, 180)
    write = app.add(new, signer=current, token=app.token(current))  # valid 365 days
    assert (write.outcome, write.status, write.code) == (
        "refused",
        400,
        "CredentialInvalidLifetimeAsPerAppPolicy",
    )
    assert write.message and write.message.startswith(
        "Credential lifetime exceeds the max value allowed as per assigned policy"
    )
    assert write.words().startswith(
        "Microsoft Graph refused addKey (HTTP 400 CredentialInvalidLifetimeAsPerAppPolicy): "
        "Credential lifetime exceeds"
    )
    assert app.thumbprints() == [current.thumbprint]
    short = make_key(validity_days=90)
    assert app.add(short, signer=current, token=app.token(current)).outcome == "done"


def test_graph_unavailable_for_add_key_is_transient_and_adds_nothing(
    app: App, current: Key, new: Key
) -> None:
    token = app.token(current)
    with faulted(app.sandbox, "graph", 503, path="/addKey", retry_after=0):
        write = app.add(new, signer=current, token=token)
    assert (write.outcome, write.status) == ("transient", 503)
    assert "could not be reached for addKey (HTTP 503" in write.words()
    assert app.thumbprints() == [current.thumbprint]


def test_graph_unreachable_is_transient(client: TenantClient, current: Key) -> None:
    write = add_certificate(
        client,
        "https://127.0.0.1:9",
        "token",
        object_id=str(uuid.uuid4()),
        certificate_pem=current.certificate_pem,
        signer=current.signer,
        signer_thumbprint=current.thumbprint,
    )
    assert (write.outcome, write.status) == ("transient", None)
    assert write.words().startswith("Microsoft Graph could not be reached for addKey (no answer")


def test_an_add_key_that_landed_but_whose_answer_was_lost_is_done_on_the_retry(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch, sent: Sent, current: Key, new: Key
) -> None:
    # The shared session, with a short read timeout: the first attempt lands after the client
    # gave up on it, and its retry (read while the first is still being served) meets "already
    # has this certificate".
    sandbox.reset()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sandbox.ca_bundle_path)
    session = make_session(retries=1, backoff=0.1, timeout=(5.0, 3.0))
    session.hooks["response"].append(sent.hook)
    app = register(sandbox, TenantClient(session), current.certificate_pem)
    token = app.token(current)
    sandbox.admin.add_fault("graph", None, path="/addKey", latency_ms=4000, count=1)
    sandbox.admin.add_fault("graph", None, path="/addKey", latency_ms=2000, count=1)
    try:
        write = app.add(new, signer=current, token=token)
    finally:
        sandbox.admin.clear_faults()

    assert write.outcome == "done", write.words()
    assert write.key_credential_id == app.key_id_of(new.thumbprint)
    assert app.thumbprints() == [current.thumbprint, new.thumbprint]
    # Both attempts reached Graph: the first added the certificate, the second was refused.
    assert sorted(r["status"] for r in app.graph_writes()) == [200, 400]


def test_add_key_twice_with_the_same_certificate_is_done_both_times(
    app: App, current: Key, new: Key
) -> None:
    token = app.token(current)
    first = app.add(new, signer=current, token=token)
    again = app.add(new, signer=current, token=token)
    assert (first.outcome, again.outcome) == ("done", "done")
    assert again.status == 400  # what Graph said, judged by the application's listing
    assert again.key_credential_id == first.key_credential_id
    assert app.thumbprints() == [current.thumbprint, new.thumbprint]


# --- removeKey ---------------------------------------------------------------------------------
def test_remove_key_removes_exactly_the_old_certificate(app: App, current: Key, new: Key) -> None:
    assert app.add(new, signer=current, token=app.token(current)).outcome == "done"
    old_key_id = app.key_id_of(current.thumbprint)
    token = app.token(new)  # after the switch, the new key signs in and signs the proof

    write = app.remove(current.thumbprint, signer=new, token=token)

    assert (write.outcome, write.status, write.key_credential_id) == ("done", 204, old_key_id)
    assert app.thumbprints() == [new.thumbprint]
    assert not app.token_answer(current).access_token
    assert app.token_answer(new).access_token


def test_removing_a_certificate_no_longer_listed_is_done_without_a_write(
    app: App, current: Key, new: Key
) -> None:
    app.sandbox.admin.reset_requests()
    write = app.remove(new.thumbprint, signer=current, token=app.token(current))
    assert write.outcome == "done"
    assert app.graph_writes() == []
    assert app.thumbprints() == [current.thumbprint]


def test_removing_the_signers_own_certificate_is_refused_and_never_sent(
    app: App, current: Key, new: Key
) -> None:
    token = app.token(current)
    assert app.add(new, signer=current, token=token).outcome == "done"
    app.sandbox.admin.reset_requests()
    write = app.remove(current.thumbprint.lower(), signer=current, token=token)
    assert (write.outcome, write.status) == ("refused", None)
    assert "signs the proof" in write.words()
    assert app.graph_writes() == []
    assert app.thumbprints() == [current.thumbprint, new.thumbprint]


def test_graph_refusing_remove_key_is_refused_and_unavailable_is_transient(
    app: App, current: Key, new: Key
) -> None:
    token = app.token(current)
    assert app.add(new, signer=current, token=token).outcome == "done"
    with faulted(app.sandbox, "graph", 400, path="/removeKey"):
        refused = app.remove(new.thumbprint, signer=current, token=token)
    with faulted(app.sandbox, "graph", 503, path="/removeKey", retry_after=0):
        transient = app.remove(new.thumbprint, signer=current, token=token)
    assert (refused.outcome, refused.status) == ("refused", 400)
    assert refused.words().startswith("Microsoft Graph refused removeKey (HTTP 400")
    assert (transient.outcome, transient.status) == ("transient", 503)
    assert app.thumbprints() == [current.thumbprint, new.thumbprint]


def test_remove_key_with_a_proof_the_app_cannot_vouch_for_is_refused(
    app: App, current: Key, new: Key, stranger: Key
) -> None:
    token = app.token(current)
    assert app.add(new, signer=current, token=token).outcome == "done"
    write = app.remove(new.thumbprint, signer=stranger, token=token)
    assert (write.outcome, write.status, write.code) == (
        "refused",
        401,
        "Authentication_MissingOrMalformed",
    )
    assert app.thumbprints() == [current.thumbprint, new.thumbprint]


def test_the_certificates_unreadable_is_transient_for_remove_key(
    app: App, current: Key, new: Key
) -> None:
    token = app.token(current)
    with faulted(app.sandbox, "graph", 429, path=f"/applications/{app.object_id}", retry_after=0):
        write = app.remove(new.thumbprint, signer=current, token=token)
    assert (write.outcome, write.status) == ("transient", 429)


# --- the object id -----------------------------------------------------------------------------
def test_the_object_id_is_read_from_graph(app: App, current: Key) -> None:
    token = app.token(current)
    assert application_object_id(app.client, app.graph, token, app.app_id) == app.object_id
    unknown = application_object_id(app.client, app.graph, token, str(uuid.uuid4()))
    assert isinstance(unknown, GraphWrite)
    assert (unknown.outcome, unknown.status, unknown.code) == (
        "refused",
        404,
        "Request_ResourceNotFound",
    )
    app.sandbox.admin.update_tenant(app.tenant_id, application_readable=False)
    denied = application_object_id(app.client, app.graph, token, app.app_id)
    assert isinstance(denied, GraphWrite) and denied.status == 403


# --- vault-key custody -------------------------------------------------------------------------
def vault_key(sandbox: Any) -> Key:
    """A non-exportable key made inside (the stand-in of) Key Vault, as custody `vault-key`
    makes it: its certificate and every signature come from Key Vault's `sign`."""
    store = KeyVaultKeyStore(sandbox.keyvault_url, StaticCredential())  # type: ignore[arg-type]
    key_id = str(uuid.uuid4())
    now = utc_now()
    labels = KeyLabels("owner", str(uuid.uuid4()), str(uuid.uuid4()), "", now + timedelta(days=365))
    certificate = store.create(
        key_id,
        labels,
        key_size=2048,
        certify=lambda signer, public: certificates.certify(
            signer, public, "Vault", validity_days=365, now=now
        ),
    )
    info = certificates.describe(certificate)
    return Key(store.signer(key_id), info.thumbprint, info.certificate_pem)


def vault_signs(sandbox: Any) -> int:
    return sum(
        1
        for r in sandbox.admin.requests()["value"]
        if r["target"] == "keyvault" and r["path"].endswith("/sign")
    )


def test_key_vault_signs_the_proof_under_vault_key_custody(
    sandbox: Any, client: TenantClient, new: Key
) -> None:
    vaulted = vault_key(sandbox)
    with pytest.raises(TypeError):  # nothing of the key is in this process
        vaulted.signer.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    app = register(sandbox, client, vaulted.certificate_pem)
    token = app.token(vaulted)
    signs_before = vault_signs(sandbox)

    write = app.add(new, signer=vaulted, token=token)

    assert write.outcome == "done", write.words()
    assert vault_signs(sandbox) == signs_before + 1  # the proof, signed by Key Vault
    assert app.thumbprints() == [vaulted.thumbprint, new.thumbprint]
    assert app.token_answer(new).access_token


def test_a_key_vault_that_cannot_sign_raises_key_unavailable_and_sends_nothing(
    sandbox: Any, client: TenantClient, new: Key
) -> None:
    vaulted = vault_key(sandbox)
    app = register(sandbox, client, vaulted.certificate_pem)
    token = app.token(vaulted)
    sandbox.admin.reset_requests()
    with faulted(sandbox, "keyvault", 503), pytest.raises(KeyUnavailable) as raised:
        app.add(new, signer=vaulted, token=token)
    assert isinstance(raised.value.cause, DependencyUnavailable)
    assert app.graph_writes() == []
    assert app.thumbprints() == [vaulted.thumbprint]
