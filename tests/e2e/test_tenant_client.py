"""The tenant client against the sandbox: answers Entra gives that the API's GUID rules keep the
routes from reaching, still mapped to the right check."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.adapters.http.outbound import make_session
from shared.adapters.keystore.base import UnusableKey
from shared.adapters.keystore.local import LocalKeyStore
from shared.adapters.tenant.assertion import KeyUnavailable, assertion_callable
from shared.adapters.tenant.client import TenantClient
from shared.core import certificates
from shared.core.answers import MetadataAnswer, TokenAnswer
from shared.core.errors import DependencyUnavailable
from shared.support.timefmt import utc_now
from shared.verification.checks.answers import Answers
from shared.verification.checks.check import Check
from shared.verification.checks.table import decide
from shared.verification.checks.tenant import tenant_check


@pytest.fixture
def client(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> TenantClient:
    sandbox.reset()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sandbox.ca_bundle_path)
    return TenantClient(make_session(retries=1, backoff=0.1))


def test_a_tenant_identifier_that_is_not_valid_is_aadsts900023(
    client: TenantClient, sandbox: Any
) -> None:
    answer = client.metadata(sandbox.base_url, "not_a_tenant!")
    assert answer.document is None and not answer.transient
    assert answer.error_code == 900023
    check = tenant_check(answer, "not_a_tenant!")
    assert (check.status, check.code) == ("fail", "AADSTS900023")


def test_a_verified_domain_resolves_like_the_guid(client: TenantClient, sandbox: Any) -> None:
    tenant = sandbox.admin.create_tenant("Fabrikam", domains=["fabrikam.onmicrosoft.com"])
    by_domain = client.metadata(sandbox.base_url, "fabrikam.onmicrosoft.com")
    by_guid = client.metadata(sandbox.base_url, tenant["tenantId"])
    assert by_domain.document is not None and by_guid.document is not None
    assert by_domain.document["token_endpoint"] == by_guid.document["token_endpoint"]


def test_metadata_is_fetched_once_and_served_to_msal_from_the_cache(
    client: TenantClient, sandbox: Any
) -> None:
    tenant = sandbox.admin.create_tenant("Once", domains=["once.onmicrosoft.com"])
    sandbox.admin.reset_requests()
    for _ in range(3):
        assert client.metadata(sandbox.base_url, tenant["tenantId"]).document is not None
    assert sandbox.admin.requests()["counts"].get("metadata", 0) == 1


def test_unreachable_endpoints_are_transient(client: TenantClient) -> None:
    answer = client.metadata("https://127.0.0.1:9", "72f988bf-86f1-41af-91ab-2d7cd011db47")
    assert answer.transient
    graph = client.graph_get("https://127.0.0.1:9/v1.0/organization", "token")
    assert graph.transient and graph.status is None


@pytest.fixture(scope="module")
def pair() -> certificates.KeyPair:
    return certificates.generate("Client", validity_days=30, key_size=2048, now=utc_now())


def _token(
    client: TenantClient,
    base_url: str,
    tenant: str,
    pair: certificates.KeyPair,
    *,
    scope: str = "https://graph.microsoft.com/.default",
    signer: Callable[[], rsa.RSAPrivateKey] | None = None,
) -> TokenAnswer:
    key = serialization.load_pem_private_key(pair.private_key_pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return client.token(
        cache_key=(str(uuid.uuid4()),),
        client_id=str(uuid.uuid4()),
        authority=f"{base_url}/{tenant}",
        scope=scope,
        assertion=assertion_callable(
            signer or (lambda: key),
            client_id="ignored-by-the-sandbox-before-the-assertion",
            thumbprint=pair.info.thumbprint,
            token_endpoint=f"{base_url}/{tenant}/oauth2/v2.0/token",
        ),
        fresh=True,
    )


def _as_checks(answer: TokenAnswer) -> dict[str, Check]:
    """The report's checks when the tenant resolved and the token endpoint said `answer`."""
    now = utc_now()
    answers = Answers(
        tenant_id="t",
        application_id="a",
        thumbprint="AB" * 20,
        organization_name=None,
        certificate_not_after=now + timedelta(days=90),
        now=now,
        warn_days=30,
        metadata=MetadataAnswer(document={}),
        token=answer,
    )
    return {c.id: c for c in decide(answers)}


def test_an_invalid_scope_is_an_unexpected_answer_not_a_certificate_failure(
    client: TenantClient, sandbox: Any, pair: certificates.KeyPair
) -> None:
    tenant = sandbox.admin.create_tenant("Scope")
    answer = _token(
        client, sandbox.base_url, tenant["tenantId"], pair, scope="https://graph.microsoft.com/x"
    )
    assert answer.error == "invalid_scope" and answer.error_code == 1002012
    checks = _as_checks(answer)
    assert checks["application"].status == "error"
    assert checks["certificate"].status == "skipped"
    assert checks["certificate"].blocked_by == "application"
    assert "AADSTS1002012" in checks["application"].detail
    assert "unexpectedly" in checks["application"].detail


def test_what_msal_raises_on_an_authority_it_cannot_use_is_said_as_it_is(
    client: TenantClient, sandbox: Any, pair: certificates.KeyPair
) -> None:
    # MSAL's own discovery of an unknown tenant raises ValueError: once read as "invalid
    # authority" and reported as a certificate to upload.
    answer = _token(client, sandbox.base_url, str(uuid.uuid4()), pair)
    assert answer.unexpected and not answer.transient
    checks = _as_checks(answer)
    assert checks["application"].status == "error"
    assert checks["certificate"].status == "skipped"
    assert "Upload certificate" not in str(checks)


def test_a_stored_key_that_is_not_a_key_is_handed_back_as_such(
    client: TenantClient, sandbox: Any, pair: certificates.KeyPair, tmp_path: Path
) -> None:
    tenant = sandbox.admin.create_tenant("Broken key")
    store = LocalKeyStore(tmp_path / "keys")
    key_id = str(uuid.uuid4())
    store.folder.mkdir(mode=0o700)
    (store.folder / f"{key_id}.pem").write_bytes(b"junk")  # what a damaged file would hold
    with pytest.raises(KeyUnavailable) as raised:
        _token(
            client,
            sandbox.base_url,
            tenant["tenantId"],
            pair,
            signer=lambda: store.signer(key_id),
        )
    assert isinstance(raised.value.cause, UnusableKey)
    assert "junk" not in str(raised.value)


def test_a_key_store_failure_reaches_the_caller_untouched(
    client: TenantClient, sandbox: Any, pair: certificates.KeyPair
) -> None:
    tenant = sandbox.admin.create_tenant("Vault down")

    def vault_down() -> rsa.RSAPrivateKey:
        raise DependencyUnavailable("Key Vault")

    with pytest.raises(KeyUnavailable) as raised:
        _token(client, sandbox.base_url, tenant["tenantId"], pair, signer=vault_down)
    assert isinstance(raised.value.cause, DependencyUnavailable)
    assert sandbox.admin.requests()["counts"].get("token", 0) == 0  # nothing was sent
