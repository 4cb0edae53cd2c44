"""What a federated account's report says when Entra refuses the issuer's assertion (API.md,
"Connecting and verifying"; FACTS §12), on both account stores.

The customer's configuration (no credential, the subject in another case, the issuer with a
trailing slash, a wrong audience) is a `fail` whose remediation names the exact issuer, subject
and audience and the `az` command, and the account becomes `action_required`. The service's
own issuer (not reachable, or signing with a key Entra's cached JWKS does not hold yet) is an
`error`, retryable, telling the customer to change nothing, and the account keeps its status.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from tests.conftest import RunningApp
from tests.e2e.customer import check, statuses
from tests.e2e.test_federated_flow import AUDIENCE, FederatedCustomer, accepted, store_settings

TOKEN_CHECKS = (
    "admin_consent",
    "directory_role",
    "directory_read",
    "access_reviews_read",
    "organization_match",
    "least_privilege",
    "app_audience",
    "app_credentials",
)


@pytest.fixture(params=["sqlite", "table"])
def store_env(request: pytest.FixtureRequest) -> dict[str, str]:
    return store_settings(request, str(request.param))


@pytest.fixture
def app(sandboxed_app: Callable[..., RunningApp], store_env: dict[str, str]) -> RunningApp:
    return sandboxed_app(store_env)


def connected(app: RunningApp, sandbox: Any) -> FederatedCustomer:
    customer = FederatedCustomer(app, sandbox).federated_all_the_way()
    report = customer.verify()
    assert report["status"] == "connected", statuses(report)
    assert customer.current()["status"] == "connected"
    return customer


def assert_customer_must_fix(
    report: dict[str, Any], customer: FederatedCustomer, code: str
) -> None:
    """`fail` on `certificate`, naming exactly what to enter and how; the token checks
    skipped; the report and the account `action_required`."""
    assert report["status"] == "action_required", statuses(report)
    certificate = check(report, "certificate")
    assert certificate["status"] == "fail" and certificate["code"] == code, certificate
    assert "federated credential" in certificate["detail"].lower()
    remediation = certificate["remediation"]
    federation = customer.key["federation"]
    # The exact values, each on its own (so a trailing slash or another case would show).
    assert f"Issuer {federation['issuer']} " in remediation
    assert "no trailing slash" in remediation
    assert f"Subject identifier {federation['subject']}," in remediation
    assert f"Audience {AUDIENCE}." in remediation
    assert f"az ad app federated-credential create --id {customer.application_id}" in remediation
    assert "Other issuer" in remediation
    for check_id in TOKEN_CHECKS:
        assert check(report, check_id)["status"] == "skipped", check_id
    assert check(report, "certificate_expiry")["status"] == "pass"
    assert customer.current()["status"] == "action_required"


def assert_service_side_error(report: dict[str, Any], code: str) -> None:
    """`error` on `certificate`, retryable, telling the customer to change nothing."""
    assert report["status"] == "error", statuses(report)
    certificate = check(report, "certificate")
    assert certificate["status"] == "error" and certificate["retryable"] is True, certificate
    assert certificate["code"] == code
    words = f"{certificate['detail']} {certificate.get('remediation') or ''}"
    assert "change nothing" in words
    assert "issuer" in words and "federated credential" in words
    for check_id in TOKEN_CHECKS:
        assert check(report, check_id)["status"] == "skipped", check_id


# --- the customer's configuration --------------------------------------------------------------
def test_an_app_registration_without_the_credential_is_aadsts70021(
    app: RunningApp, sandbox: Any
) -> None:
    customer = FederatedCustomer(app, sandbox).register()
    customer.generate_federated()
    first = customer.connect()["status"]
    report = customer.verify()  # the customer linked before adding the credential
    assert first != "action_required"
    assert_customer_must_fix(report, customer, "AADSTS70021")
    assert accepted(sandbox) is None


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ("removed", "AADSTS70021"),
        ("subject in upper case", "AADSTS7002138"),
        ("issuer with a trailing slash", "AADSTS700211"),
        ("audience of another", "AADSTS700212"),
    ],
)
def test_a_credential_changed_on_the_app_registration_is_the_customers_to_fix(
    app: RunningApp, sandbox: Any, change: str, code: str
) -> None:
    customer = connected(app, sandbox)
    tenant, application = customer.tenant_id, customer.application_id
    federation = customer.key["federation"]
    name = federation["name"]
    if change == "removed":
        sandbox.admin.delete_federated_credential(tenant, application, name)
    elif change == "subject in upper case":
        changed = {"subject": federation["subject"].upper()}
        sandbox.admin.update_federated_credential(tenant, application, name, changed)
    elif change == "issuer with a trailing slash":
        changed = {"issuer": federation["issuer"] + "/"}
        sandbox.admin.update_federated_credential(tenant, application, name, changed)
    else:
        changed = {"audiences": ["api://AzureADTokenExchange/other"]}
        sandbox.admin.update_federated_credential(tenant, application, name, changed)
    assert_customer_must_fix(customer.verify(), customer, code)


def test_a_credential_added_with_a_trailing_slash_never_connects(
    app: RunningApp, sandbox: Any
) -> None:
    customer = FederatedCustomer(app, sandbox).register()
    customer.generate_federated()
    customer.add_credential(issuer=customer.key["federation"]["issuer"] + "/")
    customer.connect()
    assert_customer_must_fix(customer.verify(), customer, "AADSTS700211")


# --- the service's issuer ----------------------------------------------------------------------
class IssuerFront(ThreadingHTTPServer):
    """A front for the app's issuer documents on a port of its own (as a front door or a custom
    domain would be): it forwards GETs to the app until `close()`, then the port is closed."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.upstream = ""
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/api/oidc"

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)


class _Forward(BaseHTTPRequestHandler):
    server: IssuerFront

    def do_GET(self) -> None:
        answer = requests.get(self.server.upstream + self.path, timeout=10)
        self.send_response(answer.status_code)
        self.send_header("Content-Type", answer.headers.get("Content-Type", "application/json"))
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def front() -> Iterator[IssuerFront]:
    server = IssuerFront()
    yield server
    server.close()


def closed_port() -> int:
    """A loopback port nothing listens on (taken from the OS, then let go)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_issuer_that_went_unreachable_is_an_error_and_the_account_stays_connected(
    sandboxed_app: Callable[..., RunningApp],
    sandbox: Any,
    store_env: dict[str, str],
    front: IssuerFront,
) -> None:
    app = sandboxed_app({**store_env, "OIDC_ISSUER": front.issuer})
    front.upstream = app.url
    customer = connected(app, sandbox)
    assert customer.key["federation"]["issuer"] == front.issuer
    front.close()  # the issuer's public name stops answering
    sandbox.admin.flush_issuer_keys()  # Entra's cache of its keys expired
    report = customer.verify()
    assert_service_side_error(report, "AADSTS50166")
    account = customer.current()
    assert account["status"] == "connected"  # an error keeps the account's status
    assert account["lastVerification"]["status"] == "error"


def test_an_issuer_on_a_closed_port_is_an_error_and_changes_no_status(
    sandboxed_app: Callable[..., RunningApp], sandbox: Any, store_env: dict[str, str]
) -> None:
    issuer = f"http://127.0.0.1:{closed_port()}/api/oidc"
    app = sandboxed_app({**store_env, "OIDC_ISSUER": issuer})
    customer = FederatedCustomer(app, sandbox).register()
    customer.generate_federated()
    assert customer.key["federation"]["issuer"] == issuer
    customer.add_credential()
    before = customer.connect()["status"]
    assert_service_side_error(customer.verify(), "AADSTS50166")
    assert customer.current()["status"] == before


class Clock:
    """The issuer key ring's clock, moved by the test (the tenant's and Entra's run on time)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def test_a_key_not_yet_in_the_jwks_entra_holds_is_an_error_until_entra_fetches_again(
    sandboxed_app: Callable[..., RunningApp], sandbox: Any, store_env: dict[str, str]
) -> None:
    clock = Clock()
    app = sandboxed_app(store_env, issuer_clock=clock)
    customer = connected(app, sandbox)  # Entra fetched the JWKS: the first key only
    first_kid = (accepted(sandbox) or {})["header"]["kid"]
    rotation = timedelta(days=app.context.settings.oidc_key_rotation_days)
    # The timer publishes the next key ahead of its use; later it signs. Entra's cache (a day
    # by default, in the sandbox as in Entra) still holds the JWKS it fetched before.
    clock.offset = rotation - timedelta(hours=25) + timedelta(minutes=1)
    upkeep = app.context.issuer().upkeep()
    assert upkeep.published == 1, upkeep
    clock.offset = rotation + timedelta(hours=1)
    kids = [k["kid"] for k in app.http.get(app.api("/oidc/jwks")).json()["keys"]]
    assert len(kids) == 2 and kids[0] == first_kid

    report = customer.verify()
    assert_service_side_error(report, "AADSTS7000272")
    assert customer.current()["status"] == "connected"
    assert accepted(sandbox)["header"]["kid"] == first_kid  # type: ignore[index]

    sandbox.admin.flush_issuer_keys()  # Entra fetches the issuer's keys again
    assert customer.verify()["status"] == "connected"
    assert accepted(sandbox)["header"]["kid"] == kids[1]  # type: ignore[index]
