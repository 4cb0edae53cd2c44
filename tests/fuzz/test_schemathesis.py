"""Schemathesis, driven by openapi.yaml, against the local host with the sandbox tenant.

Every operation of the document gets its own pytest item, its own app (`sandboxed_app`, local
stores, `AUTH_MODE=local`) and its own seed data, then a bounded, deterministic run of generated
requests (positive and negative data; phases: the document's examples, coverage, fuzzing). Each
response must be no 5xx, a documented status code with a documented content type and headers, and
a body that validates against the documented schema.

Seeding, so that path parameters reach existing resources: before the run, the fixture makes what a
customer makes (a sandbox tenant and app with consent and Global Reader, a key, the uploaded
certificate, a linked and verified account) plus spare keys. Generated values are kept for half of
the cases; in the other half (every second case of an operation, so still deterministic) the test
swaps `{keyId}` / `{id}` for the seeded key and account, and, in `POST /api/accounts`, the body's
`tenantId`/`applicationId`/`keyId` for the seeded or a spare key, so 200/201/204/409 answers are
exercised as well as 400/404. A `DELETE` that unlinks the seeded account links a fresh one at once.

Counts are printed at the end of the module (`cases generated` = test-function calls by
Schemathesis, `requests run` = calls that reached the app), and asserted in
`test_every_operation_was_fuzzed`.
"""

from __future__ import annotations

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
from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.checks import unsupported_method

from localdev.functions import APP_ROOT
from tests.conftest import RunningApp
from tests.e2e.customer import Customer

MAX_EXAMPLES = 50  # fuzzing-phase cases per operation; examples and coverage cases come on top
SEED = 20261126

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "generation": {
            "mode": "all",  # valid and invalid data
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,  # Hypothesis `derandomize`
            "database": "none",  # no example database: nothing carried between runs
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
            "stateful": {"enabled": False},
        },
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
]

# operation label ("GET /api/keys/{keyId}") -> counts, for the summary and the last test
GENERATED: Counter[str] = Counter()
RUN: Counter[str] = Counter()
STATUSES: dict[str, Counter[int]] = {}
SEEDED_HITS: Counter[str] = Counter()
FAILED: set[str] = set()


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
def seeded(sandboxed_app: Callable[..., RunningApp], sandbox: Any) -> Seeded:
    app = sandboxed_app()
    customer = Customer(app, sandbox).link_all_the_way()
    report = customer.verify()
    assert report["status"] == "connected", report
    seeded = Seeded(app, customer)
    seeded.spare_keys = [seeded.new_spare_key() for _ in range(2)]
    return seeded


def swap_in_seeded_resources(case: schemathesis.Case, seeded: Seeded, number: int) -> bool:
    """Every second case of an operation targets the seeded resources. True when it did."""
    if number % 2:
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
@settings(suppress_health_check=list(HealthCheck))
def test_api_conforms_to_openapi(case: schemathesis.Case, seeded: Seeded) -> None:
    label = case.operation.label
    number = GENERATED[label]
    GENERATED[label] += 1
    swapped = swap_in_seeded_resources(case, seeded, number)
    if swapped and case.path == "/api/accounts/{id}/rotation" and case.method.upper() != "POST":
        seeded.ensure_rotation()
    response = case.call(base_url=seeded.app.url, session=seeded.app.http, timeout=60)
    RUN[label] += 1
    STATUSES.setdefault(label, Counter())[response.status_code] += 1
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
    if reporter is None or capture is None or not GENERATED:
        return
    with capture.global_and_fixture_disabled():
        write_summary(reporter)


def write_summary(reporter: Any) -> None:
    reporter.write_line("")
    reporter.write_line(
        f"schemathesis: {sum(GENERATED.values())} cases generated, {sum(RUN.values())} requests "
        f"run, {len(GENERATED)} operations, seed {SEED}, max_examples {MAX_EXAMPLES}, "
        f"{len(FAILED)} operations failed"
    )
    for label in operation_labels():
        statuses = ", ".join(f"{s}×{n}" for s, n in sorted(STATUSES.get(label, Counter()).items()))
        reporter.write_line(
            f"  {label:32} {GENERATED[label]:4} cases, seeded hits {SEEDED_HITS[label]:3}: "
            f"{statuses}"
        )


# Operations without parameters or body: Hypothesis stops after the few distinct requests.
NO_INPUTS = {"GET /api/onboarding", "GET /api/health"}
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
    # Invalid data was generated and refused where the document allows it.
    assert 400 in STATUSES["POST /api/keys"] and 400 in STATUSES["POST /api/accounts"]
    assert 400 in STATUSES["GET /api/accounts"] and 400 in STATUSES["GET /api/events"]
    assert 404 in STATUSES["GET /api/keys/{keyId}"] and 404 in STATUSES["GET /api/accounts/{id}"]
    # Undocumented methods were sent and answered 405 on every path (Schemathesis sends them
    # once per path, with one of the path's operations).
    refused_paths = {label.split(" ", 1)[1] for label, seen in STATUSES.items() if 405 in seen}
    assert refused_paths == {label.split(" ", 1)[1] for label in MUST_SUCCEED}
    assert not FAILED, f"operations that failed conformance: {sorted(FAILED)}"


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
]
DOCUMENTED_PATH = {
    "/api/keys": "/api/keys",
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
    pairs = zip(template.split("/"), path.split("/"), strict=True)
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
