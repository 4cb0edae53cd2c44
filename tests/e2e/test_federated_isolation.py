"""A federated credential serves only its owner (API.md, "Creating one"): the app signs an
assertion for a subject only for the owner whose credential it is, so another owner of the
service, linking the same tenant and app, never gets a token for the first owner's subject;
and once unlinked, a subject is never signed for again, whatever runs afterwards.

Two owners of the service are two callers under AUTH_MODE=entra (portal tokens of two tenants,
as in test_caller_identity.py). Every client assertion the app sends is read off its outbound
session, so "never signed" is what left the app, not what the sandbox happened to accept.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import jwt
import pytest
import requests

from shared.core.clouds import CLOUDS
from shared.signin import attempt
from shared.timer import run as health_check
from tests.conftest import SEEN, RunningApp, api_session
from tests.e2e.customer import check, statuses
from tests.e2e.test_federated_flow import FederatedCustomer, accepted, token_requests

PORTAL_AUDIENCE = "api://portal-backend"


@pytest.fixture
def app(sandboxed_app: Callable[..., RunningApp], sandbox: Any) -> RunningApp:
    return sandboxed_app(
        {
            "AUTH_MODE": "entra",
            "AUTH_AUDIENCE": PORTAL_AUDIENCE,
            "AUTH_ISSUER": sandbox.base_url + "/{tid}/v2.0",
            "AUTH_JWKS_URI": sandbox.base_url + "/portal/common/discovery/v2.0/keys",
        }
    )


def as_owner(app: RunningApp, sandbox: Any, owner: str) -> RunningApp:
    """The app as one owner of the service calls it: every request with that owner's token."""
    token: str = sandbox.admin.mint_portal_token(owner, PORTAL_AUDIENCE)
    SEEN.secrets.add(token)
    session = api_session()
    session.headers["Authorization"] = f"Bearer {token}"
    return RunningApp(app.url, app.context, session, app.host)


@dataclass
class SentAssertions:
    """The claims of every client assertion the app sent to a token endpoint."""

    claims: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        body = response.request.body
        text = body.decode() if isinstance(body, bytes) else body or ""
        for assertion in parse_qs(text).get("client_assertion", []):
            self.claims.append(jwt.decode(assertion, options={"verify_signature": False}))

    def subjects(self) -> list[str]:
        return [str(c.get("sub")) for c in self.claims]


@pytest.fixture
def sent(app: RunningApp) -> SentAssertions:
    watcher = SentAssertions()
    app.context.http.hooks["response"].append(watcher)
    return watcher


def link(customer: FederatedCustomer) -> dict[str, Any]:
    response = customer.app.http.post(
        customer.app.api("/accounts"),
        json={
            "displayName": "Contoso production",
            "tenantId": customer.tenant_id,
            "applicationId": customer.application_id,
            "keyId": customer.key["keyId"],
        },
    )
    return {"status": response.status_code, "body": response.json()}


def test_another_owner_gets_no_token_for_the_first_owners_subject(
    app: RunningApp, sandbox: Any, sent: SentAssertions
) -> None:
    first, other = str(uuid.uuid4()), str(uuid.uuid4())
    alice = FederatedCustomer(as_owner(app, sandbox, first), sandbox).federated_all_the_way()
    assert alice.verify()["status"] == "connected"
    subject = alice.key["federation"]["subject"]
    assert sent.subjects() == [subject]
    accepted_for_alice = accepted(sandbox)

    # Bob, another owner of the service, for the same tenant and app.
    bob = FederatedCustomer(as_owner(app, sandbox, other), sandbox)
    bob.tenant_id, bob.application_id = alice.tenant_id, alice.application_id
    key_id = alice.key["keyId"]
    assert bob.app.http.get(bob.app.api(f"/keys/{key_id}")).status_code == 404
    download = bob.app.http.get(bob.app.api(f"/keys/{key_id}"), params={"format": "json"})
    assert download.status_code == 404 and subject not in download.text
    bob.key = alice.key
    stolen = link(bob)
    assert stolen["status"] == 400 and stolen["body"]["errors"][0]["field"] == "keyId"

    # Bob's own credential has its own subject, which the app registration does not trust.
    own = bob.generate_federated()
    assert own["federation"]["subject"] != subject
    bob.connect()
    report = bob.verify()
    assert report["status"] == "action_required", statuses(report)
    certificate = check(report, "certificate")
    assert certificate["status"] == "fail" and certificate["code"] == "AADSTS700213"
    assert own["federation"]["subject"] in certificate["remediation"]
    assert subject not in f"{certificate['detail']} {certificate['remediation']}"
    # Only Bob's subject was ever signed for Bob; the sandbox accepted nothing new.
    assert sent.subjects() == [subject, own["federation"]["subject"]]
    assert accepted(sandbox) == accepted_for_alice
    # Alice is untouched.
    assert alice.verify()["status"] == "connected"


def test_a_subject_copied_into_another_app_registration_is_useless_there(
    app: RunningApp, sandbox: Any, sent: SentAssertions
) -> None:
    alice = FederatedCustomer(
        as_owner(app, sandbox, str(uuid.uuid4())), sandbox
    ).federated_all_the_way()
    subject = alice.key["federation"]["subject"]
    # Bob trusts Alice's subject on his own app registration, and links a credential of his.
    bob = FederatedCustomer(as_owner(app, sandbox, str(uuid.uuid4())), sandbox).register()
    bob.generate_federated()
    bob.add_credential(subject=subject, name="copied-from-alice")
    bob.connect()
    report = bob.verify()
    assert check(report, "certificate")["status"] == "fail", statuses(report)
    assert sent.subjects() == [bob.key["federation"]["subject"]]
    assert accepted(sandbox) is None


def test_an_unlinked_subject_is_never_signed_again(
    app: RunningApp, sandbox: Any, sent: SentAssertions
) -> None:
    owner = str(uuid.uuid4())
    alice = FederatedCustomer(as_owner(app, sandbox, owner), sandbox).federated_all_the_way()
    other = FederatedCustomer(as_owner(app, sandbox, owner), sandbox).federated_all_the_way()
    assert alice.verify()["status"] == other.verify()["status"] == "connected"
    subject = alice.key["federation"]["subject"]
    stored = alice.stored_account(owner)
    unlinked = alice.app.http.delete(alice.app.api(f"/accounts/{alice.account['id']}"))
    assert unlinked.status_code == 204
    # The credential stays on Alice's app registration (she did not remove it), yet from here on
    # nothing the app does signs for its subject: a timer run, the other account's verification,
    # a direct sign-in attempt with the unlinked key id, a new credential for the same app.
    sent.claims.clear()
    sandbox.admin.reset_requests()
    tried = attempt(
        app.context, stored, CLOUDS["global"], key_id=stored.key_id, thumbprint="", fresh=True
    )
    assert tried.answer is None and tried.key_failure == "missing"
    assert token_requests(sandbox.admin.requests()) == []
    health_check.run(app.context)
    assert other.verify()["status"] == "connected"
    alice.generate_federated()
    alice.add_credential()
    alice.connect()
    assert alice.verify()["status"] == "connected"
    health_check.run(app.context)
    assert sent.claims, "the app signed in after the unlink"
    assert subject not in sent.subjects()
    assert alice.key["federation"]["subject"] in sent.subjects()
