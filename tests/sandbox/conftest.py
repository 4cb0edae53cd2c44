"""Fixtures for the sandbox's own tests: one running sandbox, key material, a linked tenant.

The sandbox starts once for the session and is reset before each test; RSA keys are made once,
since their generation dominates the run time.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import msal
import pytest
import requests

from localdev.sandbox import Sandbox
from tests.sandbox.tenant_setup import (
    ASSERTION_TYPE,
    GRAPH_SCOPE,
    Credential,
    Linked,
    MsalFactory,
    make_credential,
    token_for,
)


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[Sandbox]:
    with Sandbox() as sandbox:
        yield sandbox


@pytest.fixture
def sb(sandbox_server: Sandbox) -> Sandbox:
    """The running sandbox, emptied before the test."""
    sandbox_server.reset()
    return sandbox_server


@pytest.fixture
def http(sb: Sandbox) -> Iterator[requests.Session]:
    """A session that trusts the sandbox CA (and ignores REQUESTS_CA_BUNDLE from the machine)."""
    session = requests.Session()
    session.verify = sb.ca_bundle_path
    session.trust_env = False
    yield session
    session.close()


@pytest.fixture(scope="session")
def credential() -> Credential:
    return make_credential()


@pytest.fixture(scope="session")
def other_credential() -> Credential:
    return make_credential()


@pytest.fixture(scope="session")
def expired_credential(credential: Credential) -> Credential:
    """Another certificate for the same key, valid last year only."""
    now = datetime.now(UTC)
    return make_credential(now - timedelta(days=400), now - timedelta(days=35), key=credential.key)


@pytest.fixture
def linked(sb: Sandbox, credential: Credential) -> Linked:
    tenant = sb.admin.create_tenant("Contoso", domains=["contoso.onmicrosoft.com", "contoso.com"])
    tid = tenant["tenantId"]
    app = sb.admin.create_application(tid, "Portal reader")
    sb.admin.upload_certificate(tid, app["appId"], credential.cert_pem)
    sb.admin.set_permissions(tid, app["appId"], ["AccessReview.Read.All"])
    sb.admin.set_directory_roles(tid, app["appId"], ["Global Reader"])
    return Linked(tid, app["appId"], "contoso.com", app["servicePrincipalId"])


@pytest.fixture
def msal_app(sb: Sandbox, http: requests.Session) -> MsalFactory:
    """Build an MSAL app the way the function app does (RS256 by default, PS256 on request)."""

    def build(
        tenant: str, app_id: str, credential: Credential, *, algorithm: str = "RS256"
    ) -> msal.ConfidentialClientApplication:
        if algorithm == "RS256":
            client_credential = {
                "private_key": credential.key_pem,
                "thumbprint": credential.sha1_hex,
            }
        else:
            client_credential = {
                "private_key": credential.key_pem,
                "public_certificate": credential.cert_pem,
            }
        return msal.ConfidentialClientApplication(
            app_id,
            client_credential=client_credential,
            authority=f"{sb.base_url}/{tenant}",
            instance_discovery=False,
            http_client=http,
        )

    return build


@pytest.fixture
def graph_token(msal_app: MsalFactory, linked: Linked, credential: Credential) -> str:
    return token_for(msal_app, linked, credential)


@pytest.fixture
def post_assertion(sb: Sandbox, http: requests.Session) -> Callable[..., requests.Response]:
    """POST a hand-made client assertion to the token endpoint (for what MSAL would never send)."""

    def post(
        tenant: str,
        app_id: str,
        credential: Credential,
        *,
        claims: dict[str, Any] | None = None,
        headers: dict[str, Any] | None = None,
        algorithm: str = "RS256",
        scope: str = GRAPH_SCOPE,
        assertion: str | None = None,
    ) -> requests.Response:
        now = int(time.time())
        payload: dict[str, Any] = {
            "aud": f"{sb.base_url}/{tenant}/oauth2/v2.0/token",
            "iss": app_id,
            "sub": app_id,
            "jti": str(uuid.uuid4()),
            "iat": now,
            "exp": now + 600,
        }
        payload.update(claims or {})
        payload = {k: v for k, v in payload.items() if v is not None}
        header = {"x5t": credential.x5t()}
        header.update(headers or {})
        header = {k: v for k, v in header.items() if v is not None}
        if assertion is None:
            assertion = jwt.encode(payload, credential.key, algorithm=algorithm, headers=header)
        return http.post(
            f"{sb.base_url}/{tenant}/oauth2/v2.0/token",
            data={
                "client_id": app_id,
                "scope": scope,
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion,
            },
        )

    return post
