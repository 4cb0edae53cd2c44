"""Schemathesis, driven by openapi.yaml, against the local host with the sandbox tenant and
authentication on.

The app runs with `AUTH_MODE=entra` against the sandbox's portal issuer and JWKS: every request
carries a real bearer token minted by the sandbox (a request without one is a 401, checked).

Two runs, both bounded and deterministic (fixed seed, Hypothesis `derandomize`, no database):

* per operation (`test_api_conforms_to_openapi`): its own app and seed data, then the phases
  examples, coverage and fuzzing, with positive (schema-valid) and negative (schema-invalid)
  data;
* stateful (`test_stateful_workflows`): one app, each scenario signed in as a new owner, and
  Hypothesis' rule-based state machine built from the document's OpenAPI `links` alone (a key's
  `keyId` into `POST /api/accounts`, an account's `id` into its routes, an `ETag` into
  `If-Match`, the feed's `cursor` into `after`), so requests reach resources made moments
  before, and the checks that need a history (what a DELETE removed stays gone, what a POST
  made is there) have one. Positive and negative data here too (one step in ten negative).

Every response must be no 5xx, a documented status with a documented content type, headers and
body; and the request's data decides the rest:

* positive data (the document says the request is valid) is accepted: a 2xx, or a 404, 409, 410
  or 412 where the state decides (an id of nothing, a tenant already linked, a cursor behind
  retention, a stale `If-Match`). A 400 only where the state decides too: a `keyId` that names
  no key of the caller for that tenant and application, an `after` beyond the newest event; and
  where the document's words say what its schemas cannot: a whole float (`365.0`) where an
  integer goes, which JSON Schema counts as an integer and Schemathesis sends as one. Anything
  else refused means the document is looser than the app;
* negative data is refused with a 4xx problem (never 401: the token is valid).

Seeding, so that path parameters of the per-operation run reach existing resources: before the
run, the fixture makes what a customer makes (a sandbox tenant and app with consent and Global
Reader, a key, the uploaded certificate, a linked and verified account) plus spare keys. Every
second positive case of an operation targets them (`{keyId}`, `{id}` and the body of
`POST /api/accounts`), so 200/201/204/409 answers are exercised as well as 404s. A `DELETE`
that unlinks the seeded account links a fresh one at once.

Counts are printed at the end of the module and asserted in `test_every_operation_was_fuzzed`
and `test_stateful_workflows`.
"""

from __future__ import annotations

import re
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.openapi.checks import UseAfterFree
from schemathesis.specs.openapi.checks import (
    ensure_resource_availability,
    is_unexpected_http_status_case,
    unsupported_method,
    use_after_free,
)

from localdev.functions import APP_ROOT
from tests.conftest import SEEN, RunningApp
from tests.e2e.customer import Customer

MAX_EXAMPLES = 50  # fuzzing-phase cases per operation; examples and coverage cases come on top
STATEFUL_SCENARIOS = 60  # state machine runs, each of 2 to STATEFUL_STEPS steps
STATEFUL_STEPS = 20
SEED = 20261126
AUDIENCE = "api://portal-backend"
# What a refused negative case may answer: a 4xx problem, never 401 (the token is valid).
REFUSALS = ["400", "404", "405", "409", "410", "412", "413", "415"]
GUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
# Positive data may meet a state that refuses it: nothing there, a conflict, a cursor behind
# retention, a stale If-Match.
STATE_DECIDES = {404, 409, 410, 412}

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "generation": {
            "mode": "all",  # valid and invalid data
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,  # Hypothesis `derandomize`
            "database": "none",  # no example database: nothing carried between runs
            # The bearer token is the session's (a real one from the sandbox's issuer): no
            # generated Authorization header replaces or removes it. test_caller_identity.py
            # covers requests without a valid token.
            "with-security-parameters": False,
        },
        "phases": {
            "examples": {"enabled": True},
            # Undocumented methods: each function.json lists every method the Functions host
            # knows, so the function answers 405 with Allow (checked by `unsupported_method`).
            # OPTIONS is answered 204 with Allow; QUERY is no method of a function.json.
            "coverage": {
                "enabled": True,
                "unexpected-methods": ["get", "put", "post", "delete", "patch", "trace"],
            },
            "fuzzing": {"enabled": True},
            # The state machine is built only when enabled; it follows the document's links
            # alone (no links inferred from names, which would chain `POST /api/accounts` to
            # a rotation that does not exist yet).
            "stateful": {"enabled": True, "inference": {"algorithms": []}},
        },
        "checks": {"negative_data_rejection": {"expected-statuses": REFUSALS}},
        "warnings": False,
    }
)
# Hypothesis keeps caches (unicode tables, constants found in the code) in ./.hypothesis, written
# from collection on: keep them out of the work tree. Examples are not stored (`database: none`).
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "m365link-hypothesis")
SCHEMA = schemathesis.openapi.from_path(APP_ROOT / "openapi.yaml", config=CONFIG)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    unsupported_method,
    negative_data_rejection,
]


@schemathesis.check
def deleted_stays_deleted(ctx: Any, response: Any, case: schemathesis.Case) -> bool | None:
    """`use_after_free` (what a DELETE removed answers 404 from then on), but for what API.md
    keeps on purpose: `DELETE /api/accounts/{id}/rotation` cancels the renewal, which stays
    readable as `cancelled`; an unlinked account's history stays readable until retention."""
    try:
        return use_after_free(ctx, response, case)
    except UseAfterFree as failure:
        if failure.free.endswith("/rotation") or failure.usage.endswith("/history"):
            return None
        raise


# Checks that look back along a stateful scenario.
STATEFUL_CHECKS = [*CHECKS, deleted_stays_deleted, ensure_resource_availability]

# operation label ("GET /api/keys/{keyId}") -> counts, for the summary and the assertions
GENERATED: Counter[str] = Counter()
RUN: Counter[str] = Counter()
STATUSES: dict[str, Counter[int]] = {}
MODES: dict[str, Counter[str]] = {}
SEEDED_HITS: Counter[str] = Counter()
FAILED: set[str] = set()
STATEFUL: dict[str, Counter[Any]] = {
    "steps": Counter(),
    "linked": Counter(),
    "scenarios": Counter(),
}
STATEFUL_STATUSES: dict[str, Counter[int]] = {}


def entra_settings(sandbox: Any) -> dict[str, str]:
    """AUTH_MODE=entra against the sandbox's portal issuer (a test issuer with its own JWKS)."""
    return {
        "AUTH_MODE": "entra",
        "AUTH_AUDIENCE": AUDIENCE,
        "AUTH_ISSUER": sandbox.base_url + "/{tid}/v2.0",
        "AUTH_JWKS_URI": sandbox.base_url + "/portal/common/discovery/v2.0/keys",
    }


def sign_in_as_new_owner(app: RunningApp, sandbox: Any) -> None:
    """Every later request of the app's session carries a fresh token of a new owner."""
    token: str = sandbox.admin.mint_portal_token(str(uuid.uuid4()), AUDIENCE)
    SEEN.secrets.add(token)
    app.http.headers["Authorization"] = f"Bearer {token}"


@dataclass
class Seeded:
    """The app under test and the resources made before the run."""

    app: RunningApp
    customer: Customer
    spare_keys: list[dict[str, Any]] = field(default_factory=list)
    relinked: int = 0

    @property
    def key_id(self) -> str:
        return str(self.customer.key["keyId"])

    @property
    def account_id(self) -> str:
        return str(self.customer.account["id"])

    def new_spare_key(self) -> dict[str, Any]:
        body = {
            "tenantId": str(uuid.uuid4()),
            "applicationId": str(uuid.uuid4()),
            "displayName": "Spare",
        }
        response = self.app.http.post(self.app.api("/keys"), json=body)
        assert response.status_code == 201, response.text
        key: dict[str, Any] = response.json()
        return key

    def ensure_rotation(self) -> None:
        """The seeded account has a renewal in progress (so GET and DELETE of its rotation
        reach one): start one unless one is (201, or 409 when one already is)."""
        url = self.app.api(f"/accounts/{self.account_id}/rotation")
        started = self.app.http.post(url)
        assert started.status_code in (201, 409), started.text

    def relink(self) -> None:
        """The seeded account was unlinked (its key is gone too): link a fresh one."""
        self.customer.generate_key(displayName=f"Relinked {self.relinked}")
        self.customer.upload_certificate()
        self.customer.connect()
        self.relinked += 1


@pytest.fixture
def authenticated_app(sandboxed_app: Callable[..., RunningApp], sandbox: Any) -> RunningApp:
    app = sandboxed_app(entra_settings(sandbox))
    refused = app.http.get(app.api("/accounts"))
    assert refused.status_code == 401, "authentication is not on"
    sign_in_as_new_owner(app, sandbox)
    return app


@pytest.fixture
def seeded(authenticated_app: RunningApp, sandbox: Any) -> Seeded:
    customer = Customer(authenticated_app, sandbox).link_all_the_way()
    report = customer.verify()
    assert report["status"] == "connected", report
    seeded = Seeded(authenticated_app, customer)
    seeded.spare_keys = [seeded.new_spare_key() for _ in range(2)]
    return seeded


# --- what a positive case may meet -------------------------------------------------------------
def is_positive(case: schemathesis.Case) -> bool:
    return case.meta is not None and case.meta.generation.mode.is_positive


def refused_fields(response: requests.Response) -> set[str]:
    try:
        return {e["field"] for e in response.json().get("errors", [])}
    except (ValueError, AttributeError, TypeError, KeyError):
        return set()


def names_no_usable_key(app: RunningApp, body: Any) -> bool:
    """API.md: a `keyId` that is unknown, another owner's, or made for another tenant or
    application is a 400 naming it. True when the `keyId` is a GUID (the document's rule; one
    of another form is no state's doing) and the caller has no such key."""
    if not isinstance(body, dict) or not GUID.fullmatch(str(body["keyId"])):
        return False
    key = app.http.get(app.api(f"/keys/{body['keyId']}"))
    if key.status_code == 404:
        return True
    assert key.status_code == 200, key.text
    made_for = (key.json()["tenantId"], key.json()["applicationId"])
    return made_for != (str(body["tenantId"]).lower(), str(body["applicationId"]).lower())


def newest_cursor(app: RunningApp) -> int:
    """The cursor after the newest event of the caller, read by following the feed."""
    cursor = None
    while True:
        params = {"top": 1000, **({"after": cursor} if cursor is not None else {})}
        page = app.http.get(app.api("/events"), params=params)
        assert page.status_code == 200, page.text
        cursor = page.json()["cursor"]
        if len(page.json()["value"]) < 1000:
            return int(cursor)


def sent_as_float(body: Any) -> set[str]:
    """Members of a JSON body sent as a float: JSON Schema counts a whole one (`365.0`) as an
    integer, and Schemathesis sends some integers that way; API.md refuses them."""
    if not isinstance(body, dict):
        return set()
    return {name for name, value in body.items() if isinstance(value, float)}


def refused_as_documented(
    app: RunningApp, case: schemathesis.Case, response: requests.Response
) -> bool:
    """A 400 for schema-valid data that the document's words explain but its schemas cannot:
    a whole float where an integer goes, or the state (a key the caller does not have, a cursor
    beyond the newest event)."""
    fields = refused_fields(response)
    if fields and fields <= sent_as_float(case.body):
        return True
    label = case.operation.label
    if label == "POST /api/accounts" and fields == {"keyId"}:
        return names_no_usable_key(app, case.body)
    if label == "GET /api/keys/{keyId}" and fields == {"format"}:
        return format_of_the_other_kind(app, case)
    if label == "POST /api/accounts/{id}/rotation" and fields and fields <= CERTIFICATE_ONLY:
        return a_federated_rotation(app, case)
    if label == "GET /api/events" and fields == {"after"}:
        after = (case.query or {}).get("after")
        return re.fullmatch("[0-9]{1,16}", str(after)) is not None and (
            int(after) > newest_cursor(app)
        )
    return False


CERTIFICATE_ONLY = {"validityDays", "keySize"}


def a_federated_rotation(app: RunningApp, case: schemathesis.Case) -> bool:
    """API.md: `validityDays`/`keySize` with `kind: federated` are 400s naming the field, and an
    absent `kind` is the account's own credential, which the schema cannot know."""
    body = case.body if isinstance(case.body, dict) else {}
    kind = body.get("kind")
    if kind is None:
        account = app.http.get(app.api(f"/accounts/{(case.path_parameters or {}).get('id')}"))
        if account.status_code != 200:
            return False
        kind = account.json().get("credential")
    return bool(kind == "federated")


def format_of_the_other_kind(app: RunningApp, case: schemathesis.Case) -> bool:
    """`format` names the other kind's download (API.md: `json` of a certificate, `cer`, `pem`
    or `crt` of a federated credential): a 400 the key's kind decides."""
    key = app.http.get(app.api(f"/keys/{(case.path_parameters or {}).get('keyId')}"))
    if key.status_code != 200:
        return False
    wanted = "federated" if (case.query or {}).get("format") == "json" else "certificate"
    return bool(key.json().get("kind") != wanted)


def check_positive_accepted(
    app: RunningApp, case: schemathesis.Case, response: requests.Response
) -> None:
    """Schema-valid data is accepted, or refused only as the state decides."""
    if not is_positive(case) or is_unexpected_http_status_case(case):
        return
    status = response.status_code
    if 200 <= status < 300 or status in STATE_DECIDES:
        return
    if status == 400 and refused_as_documented(app, case, response):
        return
    raise AssertionError(
        f"schema-valid request refused: {case.operation.label} {status} {response.text[:300]}\n"
        f"{case.as_curl_command()}"
    )


# --- the run per operation ---------------------------------------------------------------------
def swap_in_seeded_resources(case: schemathesis.Case, seeded: Seeded, number: int) -> bool:
    """Every second positive case of an operation targets the seeded resources. True when it
    did."""
    if number % 2 or not is_positive(case):
        return False
    swapped = False
    if "keyId" in (case.path_parameters or {}):
        case.path_parameters["keyId"] = seeded.key_id
        swapped = True
    if "id" in (case.path_parameters or {}):
        case.path_parameters["id"] = seeded.account_id
        swapped = True
    creating_account = case.operation.method.upper() == "POST" and case.path == "/api/accounts"
    if creating_account and isinstance(case.body, dict):
        # Alternate between the seeded key (409: already linked) and a spare one (201 once, then
        # 409: key already used).
        choice = (number // 2) % (1 + len(seeded.spare_keys))
        key = dict(seeded.customer.key) if choice == 0 else seeded.spare_keys[choice - 1]
        case.body.update(
            tenantId=key["tenantId"], applicationId=key["applicationId"], keyId=key["keyId"]
        )
        swapped = True
    return swapped


@SCHEMA.parametrize()
# One app per operation, shared by its cases on purpose; slow cases (verify) are expected.
@settings(suppress_health_check=list(HealthCheck), deadline=None)
def test_api_conforms_to_openapi(case: schemathesis.Case, seeded: Seeded) -> None:
    label = case.operation.label
    number = GENERATED[label]
    GENERATED[label] += 1
    positive = is_positive(case)
    swapped = swap_in_seeded_resources(case, seeded, number)
    if swapped and case.path == "/api/accounts/{id}/rotation" and case.method.upper() != "POST":
        seeded.ensure_rotation()
    response = case.call(base_url=seeded.app.url, session=seeded.app.http, timeout=60)
    RUN[label] += 1
    STATUSES.setdefault(label, Counter())[response.status_code] += 1
    MODES.setdefault(label, Counter())["positive" if positive else "negative"] += 1
    if swapped and response.status_code < 400:
        SEEDED_HITS[label] += 1
    if (
        case.operation.method.upper() == "DELETE"
        and case.path == "/api/accounts/{id}"  # an unlink, not the rotation's cancel
        and case.path_parameters.get("id") == seeded.account_id
        and response.status_code == 204
    ):
        seeded.relink()
    try:
        case.validate_response(response, checks=CHECKS)
        check_positive_accepted(seeded.app, case, response)
    except BaseException:  # Schemathesis' FailureGroup is a BaseExceptionGroup
        FAILED.add(label)
        raise


def operation_labels() -> list[str]:
    return [result.ok().label for result in SCHEMA.get_all_operations()]


@pytest.fixture(scope="module", autouse=True)
def _summary(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not (GENERATED or STATEFUL["steps"]):
        return
    with capture.global_and_fixture_disabled():
        write_summary(reporter)


def write_summary(reporter: Any) -> None:
    reporter.write_line("")
    modes = sum((MODES.get(label, Counter()) for label in MODES), Counter())
    reporter.write_line(
        f"schemathesis: {sum(GENERATED.values())} cases generated ({modes['positive']} positive, "
        f"{modes['negative']} negative), {sum(RUN.values())} requests run, {len(GENERATED)} "
        f"operations, seed {SEED}, max_examples {MAX_EXAMPLES}, {len(FAILED)} operations failed"
    )
    for label in operation_labels():
        statuses = ", ".join(f"{s}×{n}" for s, n in sorted(STATUSES.get(label, Counter()).items()))
        reporter.write_line(
            f"  {label:36} {GENERATED[label]:4} cases, seeded hits {SEEDED_HITS[label]:3}: "
            f"{statuses}"
        )
    steps = STATEFUL["steps"]
    reporter.write_line(
        f"stateful: {STATEFUL['scenarios']['run']} scenarios, {sum(steps.values())} steps "
        f"({STATEFUL['steps']['positive']} positive, {STATEFUL['steps']['negative']} negative), "
        f"{sum(STATEFUL['linked'].values())} through links"
    )
    for label, statuses_seen in sorted(STATEFUL_STATUSES.items()):
        statuses = ", ".join(f"{s}×{n}" for s, n in sorted(statuses_seen.items()))
        reporter.write_line(f"  {label:36} {STATEFUL['linked'][label]:4} linked: {statuses}")


# Operations without parameters or body: Hypothesis stops after the few distinct requests.
NO_INPUTS = {
    "GET /api/onboarding",
    "GET /api/health",
    "GET /api/oidc/.well-known/openid-configuration",
    "HEAD /api/oidc/.well-known/openid-configuration",
    "GET /api/oidc/jwks",
    "HEAD /api/oidc/jwks",
}
# Successful answers each operation must have produced with the seeded resources.
MUST_SUCCEED = {
    "POST /api/keys": {201},
    "GET /api/keys/{keyId}": {200},
    "POST /api/accounts": {201, 409},
    "GET /api/accounts": {200},
    "GET /api/accounts/{id}": {200},
    "DELETE /api/accounts/{id}": {204},
    "PATCH /api/accounts/{id}": {200, 412},
    "POST /api/accounts/{id}/verify": {200},
    "POST /api/accounts/{id}/rotation": {201, 409},
    "GET /api/accounts/{id}/rotation": {200, 404},
    "DELETE /api/accounts/{id}/rotation": {204, 404},
    "GET /api/accounts/{id}/history": {200},
    "GET /api/events": {200},
    "GET /api/onboarding": {200},
    "GET /api/health": {200},
    "GET /api/oidc/.well-known/openid-configuration": {200},
    "HEAD /api/oidc/.well-known/openid-configuration": {200},
    "GET /api/oidc/jwks": {200},
    "HEAD /api/oidc/jwks": {200},
}


def test_every_operation_was_fuzzed() -> None:
    """Runs after the generated tests (same module, later in the file). It never skips: without
    the generated tests it fails, and their failures do not excuse the counts."""
    assert GENERATED, "the generated tests did not run: run this whole module"
    assert set(operation_labels()) == set(MUST_SUCCEED), "an operation without expectations"
    for label, expected in MUST_SUCCEED.items():
        minimum = 1 if label in NO_INPUTS else MAX_EXAMPLES
        assert GENERATED[label] >= minimum, f"{label}: only {GENERATED[label]} cases"
        assert RUN[label] == GENERATED[label], f"{label}: not every case reached the app"
        seen = set(STATUSES.get(label, {}))
        assert expected <= seen, f"{label}: expected {expected} among {sorted(seen)}"
        if label not in NO_INPUTS:  # both kinds of data reached every operation with inputs
            assert MODES[label]["positive"] and MODES[label]["negative"], MODES[label]
    # Invalid data was generated and refused where the document allows it.
    assert 400 in STATUSES["POST /api/keys"] and 400 in STATUSES["POST /api/accounts"]
    assert 400 in STATUSES["GET /api/accounts"] and 400 in STATUSES["GET /api/events"]
    assert 404 in STATUSES["GET /api/keys/{keyId}"] and 404 in STATUSES["GET /api/accounts/{id}"]
    # Undocumented methods were sent and answered 405 on every path (Schemathesis sends them
    # once per path, with one of the path's operations).
    refused_paths = {label.split(" ", 1)[1] for label, seen in STATUSES.items() if 405 in seen}
    assert refused_paths == {label.split(" ", 1)[1] for label in MUST_SUCCEED}
    assert not FAILED, f"operations that failed conformance: {sorted(FAILED)}"


# --- the stateful run --------------------------------------------------------------------------
# Chains start where nothing is needed yet (a key, the lists, the feed). These starts would send a
# random id (a 404 nearly always) or a random key (a 400): the run per operation covers them, and
# here their steps go to chains instead.
UNFRUITFUL_ROOTS = {
    "RANDOM__POST_api_accounts": "POST /api/accounts",
    "RANDOM__POST_api_accounts_id_rotation": "POST /api/accounts/{id}/rotation",
}


def workflow(app: RunningApp, sandbox: Any) -> type[Any]:
    """The document's state machine, calling the app with the signed-in session. Each scenario
    signs in as a new owner, so it starts from nothing whatever the ones before it made: a
    scenario replayed by Hypothesis meets the same answers (an app shared by scenarios would
    make Hypothesis find its data generation inconsistent, and hide what it replays)."""
    machine: Any = SCHEMA.as_state_machine()
    assert set(UNFRUITFUL_ROOTS) <= machine.root_rules, sorted(machine.root_rules)

    class Workflow(machine):  # type: ignore[misc, valid-type]
        def setup(self) -> None:
            STATEFUL["scenarios"]["run"] += 1
            sign_in_as_new_owner(app, sandbox)

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"base_url": app.url, "session": app.http, "timeout": 60}

        def step(self, input: Any) -> Any:
            label = input.case.operation.label
            STATEFUL["steps"]["positive" if is_positive(input.case) else "negative"] += 1
            if input.transition is not None and input.is_applied:
                STATEFUL["linked"][label] += 1
            output = super().step(input)
            STATEFUL_STATUSES.setdefault(label, Counter())[output.response.status_code] += 1
            return output

        def validate_response(
            self,
            response: Any,
            case: schemathesis.Case,
            additional_checks: Any = None,
            **kwargs: Any,
        ) -> None:
            case.validate_response(
                response,
                checks=STATEFUL_CHECKS,
                transport_kwargs=kwargs or None,
                recorder=self.recorder,
            )
            check_positive_accepted(app, case, response)

    for name, label in UNFRUITFUL_ROOTS.items():
        setattr(Workflow, name, None)  # no longer a rule
        Workflow._root_labels -= {label}
    Workflow.root_rules = machine.root_rules - set(UNFRUITFUL_ROOTS)
    return Workflow


# Operations the links lead to, each of which must have been reached through a link.
LINKED_TARGETS = {
    "POST /api/accounts",
    "GET /api/keys/{keyId}",
    "GET /api/accounts/{id}",
    "PATCH /api/accounts/{id}",
    "DELETE /api/accounts/{id}",
    "POST /api/accounts/{id}/verify",
    "POST /api/accounts/{id}/rotation",
    "GET /api/accounts/{id}/rotation",
    "DELETE /api/accounts/{id}/rotation",
    "GET /api/accounts/{id}/history",
    "GET /api/events",
}


def test_stateful_workflows(authenticated_app: RunningApp, sandbox: Any) -> None:
    """Chains of requests along the document's links, each answer checked as above, and the
    checks that look back: an unlinked account stays gone, a created resource is there."""
    workflow(authenticated_app, sandbox).run(
        settings=settings(
            max_examples=STATEFUL_SCENARIOS,
            stateful_step_count=STATEFUL_STEPS,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.reuse, Phase.generate],  # no shrinking of a live run
            suppress_health_check=list(HealthCheck),
        )
    )
    assert STATEFUL["scenarios"]["run"] >= STATEFUL_SCENARIOS
    assert STATEFUL["steps"]["positive"] and STATEFUL["steps"]["negative"], STATEFUL["steps"]
    unreached = LINKED_TARGETS - set(STATEFUL["linked"])
    assert not unreached, f"never reached through a link: {sorted(unreached)}"
    successes = {label for label, seen in STATEFUL_STATUSES.items() if any(s < 300 for s in seen)}
    assert successes >= LINKED_TARGETS, f"no success: {sorted(LINKED_TARGETS - successes)}"


# --- explicit cases: API.md's input rules, which generated data rarely hits -------------------
KEY = '"tenantId": "{tenantId}", "applicationId": "{applicationId}", "displayName": "E"'
LINK = KEY + ', "keyId": "{spareKeyId}"'


def obj(*members: str) -> str:
    """A JSON object as raw text, so duplicates, NaN and 2048.0 go out as written."""
    return "{" + ", ".join(members) + "}"


# (name, method, path, raw JSON body or None, expected status). `{...}` names a seeded value;
# `\n` in a body is the JSON escape of a newline (the decoded value ends in one).
NL_TENANT = KEY.replace("{tenantId}", "{tenantId}\\n")
NL_KEY = LINK.replace("{spareKeyId}", "{spareKeyId}\\n")
EXPLICIT: list[tuple[str, str, str, str | None, int]] = [
    ("keySize 2048.0", "POST", "/api/keys", obj(KEY, '"keySize": 2048.0'), 400),
    ("keySize 2e3", "POST", "/api/keys", obj(KEY, '"keySize": 2e3'), 400),
    ("keySize true", "POST", "/api/keys", obj(KEY, '"keySize": true'), 400),
    ("validityDays 365.0", "POST", "/api/keys", obj(KEY, '"validityDays": 365.0'), 400),
    ("keySize 2048", "POST", "/api/keys", obj(KEY, '"keySize": 2048'), 201),
    ("tenantId + newline", "POST", "/api/keys", obj(NL_TENANT), 400),
    ("keyId + newline", "POST", "/api/accounts", obj(NL_KEY), 400),
    ("path keyId + newline", "GET", "/api/keys/{keyId}%0A", None, 404),
    ("path id + newline", "GET", "/api/accounts/{id}%0A", None, 404),
    ("path id + newline, delete", "DELETE", "/api/accounts/{id}%0A", None, 404),
    ("path id + newline, verify", "POST", "/api/accounts/{id}%0A/verify", None, 404),
    ("path keyId upper case", "GET", "/api/keys/{KEYID}", None, 200),
    ("64 levels", "POST", "/api/keys", obj(KEY, '"x": ' + "[" * 63 + "]" * 63), 201),
    ("65 levels", "POST", "/api/keys", obj(KEY, '"x": ' + "[" * 64 + "]" * 64), 400),
    ("30,000 levels", "POST", "/api/keys", "[" * 30000 + "]" * 30000, 400),
    ("duplicate key", "POST", "/api/keys", obj(KEY, '"displayName": "F"'), 400),
    ("duplicate key, link", "POST", "/api/accounts", obj(LINK, '"keyId": "{spareKeyId}"'), 400),
    ("NaN", "POST", "/api/accounts", obj(LINK, '"x": NaN'), 400),
    ("4,301 digits", "POST", "/api/keys", obj(KEY, '"x": ' + "1" * 4301), 400),
    ("2^53 in an ignored member", "POST", "/api/keys", obj(KEY, '"x": 9007199254740992'), 201),
    ("2^53 + 1", "POST", "/api/keys", obj(KEY, '"x": 9007199254740993'), 400),
    ("-2^53 - 1", "POST", "/api/accounts", obj(LINK, '"x": -9007199254740993'), 400),
    # API.md: an empty query value is the same as an absent one.
    ("empty top, status, after", "GET", "/api/accounts?top=&status=&after=", None, 200),
    ("empty top, after: history", "GET", "/api/accounts/{id}/history?top=&after=", None, 200),
    ("empty top, after: feed", "GET", "/api/events?top=&after=", None, 200),
    ("empty format", "GET", "/api/keys/{keyId}?format=", None, 200),
]
DOCUMENTED_PATH = {
    "/api/keys": "/api/keys",
    "/api/accounts?top=&status=&after=": "/api/accounts",
    "/api/accounts/{id}/history?top=&after=": "/api/accounts/{id}/history",
    "/api/events?top=&after=": "/api/events",
    "/api/keys/{keyId}?format=": "/api/keys/{keyId}",
    "/api/keys/{keyId}%0A": "/api/keys/{keyId}",
    "/api/keys/{KEYID}": "/api/keys/{keyId}",
    "/api/accounts": "/api/accounts",
    "/api/accounts/{id}%0A": "/api/accounts/{id}",
    "/api/accounts/{id}%0A/verify": "/api/accounts/{id}/verify",
}


def fill(template: str, seeded: Seeded) -> str:
    spare = seeded.spare_keys[0]
    values = {
        "{tenantId}": spare["tenantId"],
        "{applicationId}": spare["applicationId"],
        "{spareKeyId}": spare["keyId"],
        "{keyId}": seeded.key_id,
        "{KEYID}": seeded.key_id.upper(),
        "{id}": seeded.account_id,
    }
    for name, value in values.items():
        template = template.replace(name, value)
    return template


def path_parameters(template: str, path: str) -> dict[str, str]:
    """The values a request path gives the documented template's parameters (decoded)."""
    pairs = zip(template.split("/"), path.split("?")[0].split("/"), strict=True)
    return {t[1:-1]: unquote(p) for t, p in pairs if t.startswith("{")}


def test_explicit_input_rule_cases_conform(seeded: Seeded) -> None:
    """Integral floats, trailing newlines, deep nesting, duplicate keys and the like: each gets
    its documented status, never a 5xx, and a response that conforms to the document."""
    wrong = []
    for name, method, path, body, status in EXPLICIT:
        operation = SCHEMA[DOCUMENTED_PATH[path]][method]
        data = fill(body, seeded).encode() if body is not None else None
        url = fill(path, seeded)
        response = seeded.app.http.request(
            method,
            seeded.app.url + url,
            data=data,
            headers={"Content-Type": "application/json"} if data is not None else {},
            timeout=60,
        )
        if response.status_code != status:
            wrong.append(f"{name}: {response.status_code} {response.text[:200]}")
            continue
        try:
            case = operation.Case(path_parameters=path_parameters(DOCUMENTED_PATH[path], url))
            case.validate_response(response, checks=CHECKS)
        except BaseException as failure:  # FailureGroup is a BaseExceptionGroup
            wrong.append(f"{name}: {failure}")
    assert len(wrong) < len(EXPLICIT), "\n".join(wrong)  # the app answered at all
    assert not wrong, "\n".join(wrong)


def test_the_document_is_served_to_schemathesis_unchanged(
    sandboxed_app: Callable[..., RunningApp],
) -> None:
    """The host's /api/openapi.yaml is the file the fuzzing above was driven by."""
    app = sandboxed_app()
    response = requests.get(f"{app.url}/api/openapi.yaml", timeout=10)
    assert response.content == (APP_ROOT / "openapi.yaml").read_bytes()
    served = schemathesis.openapi.from_url(f"{app.url}/api/openapi.yaml", config=CONFIG)
    assert [r.ok().label for r in served.get_all_operations()] == operation_labels()
