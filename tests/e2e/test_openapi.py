"""openapi.yaml against what the app really serves: the routes of the function.json files, the
document the local host hands out, and real responses checked against the document's schemas.

Schemas are checked with `jsonschema` (Draft 2020-12, the dialect of OpenAPI 3.1); the whole
document is one `referencing` resource, so every `$ref` in it resolves as written.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from functools import cache
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from localdev.functions import APP_ROOT, discover, route_prefix
from localdev.host import LocalHost
from shared.core.validation import Fields
from shared.linking import history
from shared.timer import housekeeping
from tests.conftest import RunningApp
from tests.contract.test_account_store import account_for
from tests.contract.test_account_store import key as stored_key
from tests.e2e.customer import Customer, statuses
from tests.fuzz import base64_patterns

DOCUMENT_PATH = APP_ROOT / "openapi.yaml"
DOCUMENT_URI = "urn:m365link:openapi"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
ALL_METHODS = {m.upper() for m in HTTP_METHODS}
# A Functions route parameter: `{name}`, `{name:constraint}`, `{name?}`, `{*name}`, `{name=x}`.
ROUTE_PARAM = re.compile(r"\{\*?([A-Za-z_][A-Za-z0-9_]*)(?::[^}?=]+)*(\?)?(?:=[^}]*)?\}")
DOC_PARAM = re.compile(r"\{([^}/]+)\}")
CATCH_ALL = re.compile(r"\{\*[A-Za-z_][A-Za-z0-9_]*\}$")
# API.md: "timestamps are RFC 3339 in UTC with a Z".
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z$")


# --- the document ------------------------------------------------------------------------------
@cache
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(DOCUMENT_PATH.read_text(encoding="utf-8"))
    return loaded


def documented_operations() -> dict[str, set[str]]:
    return {
        path: {m.upper() for m in item if m in HTTP_METHODS}
        for path, item in document()["paths"].items()
    }


# --- what the function.json files serve --------------------------------------------------------
def expand_route(route: str) -> list[tuple[str, bool]]:
    """A Functions route template as OpenAPI path templates, each with "made by dropping `{x?}`".

    `{name:constraint}` and `{*name}` become `{name}`; an optional last parameter `{name?}` gives
    the path with it and the path without that segment (as the Functions host routes it).
    """
    route = route.strip("/")
    prefix = route_prefix(APP_ROOT)

    def full(template: str) -> str:
        template = ROUTE_PARAM.sub(lambda m: "{" + m.group(1) + "}", template).strip("/")
        return "/" + "/".join(part for part in (prefix, template) if part)

    paths = [(full(route), False)]
    optional = [m for m in ROUTE_PARAM.finditer(route) if m.group(2)]
    if optional:
        paths.append((full(route[: optional[-1].start()]), True))
    return paths


def catch_all_documents(path: str) -> list[tuple[str, bool]]:
    """A catch-all route (`oidc/{*document}`) serves fixed documents under its prefix: the
    document names them (a path parameter cannot hold the `/` of `.well-known/…`)."""
    prefix = path.rsplit("/{", 1)[0] + "/"
    return [(p, False) for p in documented_operations() if p.startswith(prefix)]


def served_operations() -> dict[str, dict[str, Any]]:
    """path -> {"methods": {...}, "function": name, "siblings": other paths of the same route}."""
    served: dict[str, dict[str, Any]] = {}
    for spec in discover(APP_ROOT):
        if spec.trigger != "httpTrigger":
            continue
        methods = set(spec.methods) or ALL_METHODS
        expanded = expand_route(spec.route or spec.name)
        if CATCH_ALL.search(spec.route or ""):
            expanded = catch_all_documents(expanded[0][0])
        for path, _ in expanded:
            assert path not in served, f"{path} is served by {served[path]['function']} too"
            served[path] = {
                "methods": methods,
                "function": spec.name,
                "siblings": [p for p, _ in expanded if p != path],
            }
    return served


def test_route_expansion_follows_the_functions_host() -> None:
    assert expand_route("keys/{keyId?}") == [("/api/keys/{keyId}", False), ("/api/keys", True)]
    assert expand_route("accounts/{id:guid}/verify") == [("/api/accounts/{id}/verify", False)]
    assert expand_route("files/{*rest}") == [("/api/files/{rest}", False)]
    assert expand_route("/health/") == [("/api/health", False)]


def test_the_http_functions_are_the_ones_expected() -> None:
    # Guards the comparisons below against reading nothing (a moved folder, a broken discover()).
    names = {s.name for s in discover(APP_ROOT) if s.trigger == "httpTrigger"}
    assert names == {
        "generate_key",
        "link_account",
        "verify_account",
        "onboarding",
        "health",
        "account_history",
        "account_rotation",
        "events",
        "oidc_issuer",
    }
    assert route_prefix(APP_ROOT) == "api"


def test_the_local_host_serves_the_same_routes() -> None:
    """The expansion above agrees with the local host's router (localdev.functions rules)."""
    routed: dict[str, set[str]] = {}
    for methods, rule, _ in LocalHost().routes():
        path = re.sub(r"<(?:path:)?(\w+)>", r"{\1}", rule)
        routed.setdefault(path, set()).update(methods.split(","))
    expected: dict[str, set[str]] = {}
    for spec in discover(APP_ROOT):
        if spec.trigger == "httpTrigger":
            for path, _ in expand_route(spec.route or spec.name):
                expected[path] = set(spec.methods) or ALL_METHODS
                if CATCH_ALL.search(spec.route or ""):  # ASP.NET Core: it matches "" too
                    expected[path.rsplit("/{", 1)[0]] = set(spec.methods) or ALL_METHODS
    assert routed == expected


def test_every_served_path_is_documented_and_nothing_else() -> None:
    served = set(served_operations())
    documented = set(documented_operations())
    assert served - documented == set(), "served by a function.json but missing from openapi.yaml"
    assert documented - served == set(), "in openapi.yaml but no function.json serves it"


def test_every_documented_method_is_served() -> None:
    served = served_operations()
    wrong = {
        (method, path)
        for path, methods in documented_operations().items()
        for method in methods - served.get(path, {"methods": set()})["methods"]
    }
    assert not wrong, f"documented, but the function.json of the route lacks the method: {wrong}"


def test_every_http_function_lists_every_method() -> None:
    """API.md: the Functions host answers a bare 404 for a method its function.json does not list,
    so each function lists every method and answers the ones its route does not serve with 405."""
    for spec in discover(APP_ROOT):
        if spec.trigger == "httpTrigger":
            assert set(spec.methods) == ALL_METHODS, f"{spec.name}: {sorted(spec.methods)}"


def undocumented_combinations() -> list[tuple[str, str]]:
    """(method, path) for every method a documented path does not document (HEAD and OPTIONS
    apart: they are checked on their own below)."""
    return sorted(
        (method, path)
        for path, methods in documented_operations().items()
        for method in ALL_METHODS - methods - {"HEAD", "OPTIONS"}
    )


def test_the_combinations_left_out_of_the_document_are_the_expected_ones() -> None:
    # Guards the parametrized test below against checking nothing.
    combinations = set(undocumented_combinations())
    documented = sum(len(m - {"HEAD", "OPTIONS"}) for m in documented_operations().values())
    assert len(combinations) == 6 * len(documented_operations()) - documented
    assert {("GET", "/api/keys"), ("POST", "/api/keys/{keyId}"), ("DELETE", "/api/accounts"),
            ("POST", "/api/accounts/{id}"), ("PUT", "/api/health")} <= combinations  # fmt: skip


def test_documented_path_parameters_match_the_route_parameters() -> None:
    for path, item in document()["paths"].items():
        in_template = set(DOC_PARAM.findall(path))
        for method in (m for m in item if m in HTTP_METHODS):
            declared = {
                p["name"]
                for p in (
                    resolve(x)
                    for x in [*item.get("parameters", []), *item[method].get("parameters", [])]
                )
                if p["in"] == "path"
            }
            assert declared == in_template, f"{method.upper()} {path}: path parameters {declared}"


# --- the document as the local host serves it --------------------------------------------------
@pytest.fixture
def app(sandboxed_app: Callable[..., RunningApp]) -> RunningApp:
    return sandboxed_app()


def test_the_local_host_serves_the_document_as_it_is(app: RunningApp) -> None:
    response = app.http.get(f"{app.url}/api/openapi.yaml")
    assert response.status_code == 200
    assert response.content == DOCUMENT_PATH.read_bytes()
    assert response.headers["Content-Type"].startswith("application/yaml")
    assert yaml.safe_load(response.content)["openapi"].startswith("3.1")


@pytest.fixture
def resources(app: RunningApp) -> dict[str, str]:
    """A real key and account, so a path names resources that exist."""
    body = {"tenantId": str(uuid.uuid4()), "applicationId": str(uuid.uuid4()), "displayName": "x"}
    key = app.http.post(app.api("/keys"), json=body).json()
    linked = app.http.post(app.api("/accounts"), json={**body, "keyId": key["keyId"]})
    assert linked.status_code == 201, linked.text
    return {"{keyId}": key["keyId"], "{id}": linked.json()["id"]}


def concrete(path: str, resources: dict[str, str]) -> str:
    for template, value in resources.items():
        path = path.replace(template, value)
    return path


@pytest.mark.parametrize(("method", "path"), undocumented_combinations())
def test_undocumented_methods_are_a_405_with_allow(
    app: RunningApp, resources: dict[str, str], method: str, path: str
) -> None:
    response = app.http.request(method, app.url + concrete(path, resources), json={})
    assert response.status_code == 405, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    validate(document_schema("Problem"), response.json())
    allowed = {m.strip() for m in response.headers["Allow"].split(",")}
    assert allowed == documented_operations()[path]
    # Nothing happened to the resources the path names.
    assert app.http.get(app.api(f"/keys/{resources['{keyId}']}")).status_code == 200
    assert app.http.get(app.api(f"/accounts/{resources['{id}']}")).status_code == 200


@pytest.mark.parametrize("path", sorted(documented_operations()))
def test_options_and_head_name_the_documented_methods(
    app: RunningApp, resources: dict[str, str], path: str
) -> None:
    url = app.url + concrete(path, resources)
    options = app.http.options(url)
    assert options.status_code == 204 and options.content == b""
    assert {m.strip() for m in options.headers["Allow"].split(",")} == documented_operations()[path]
    head = app.http.head(url)
    if "HEAD" in documented_operations()[path]:  # the issuer's documents
        assert head.status_code == 200 and head.content == b""
        return
    assert head.status_code == 405
    assert {m.strip() for m in head.headers["Allow"].split(",")} == documented_operations()[path]


def test_an_unknown_route_or_method_is_the_hosts_bare_404(app: RunningApp) -> None:
    for method, path in (
        ("GET", "/api/nothing-here"),
        ("PROPFIND", "/api/keys"),
        ("GET", "/api/keys/a/b"),
        ("POST", "/api/accounts/a/verify/x"),
    ):
        response = app.http.request(method, app.url + path)
        assert response.status_code == 404, f"{method} {path}"
        assert response.content == b""


# --- schema validation -------------------------------------------------------------------------
@cache
def registry() -> Registry:
    resource: Resource[Any] = Resource.from_contents(document(), default_specification=DRAFT202012)
    return Registry().with_resource(DOCUMENT_URI, resource)


def format_checker() -> FormatChecker:
    checker = FormatChecker()

    @checker.checks("date-time", raises=ValueError)
    def is_utc_timestamp(value: object) -> bool:
        if not isinstance(value, str):
            return True
        datetime.fromisoformat(value.replace("Z", "+00:00"))
        return bool(RFC3339_UTC.match(value))

    return checker


def document_schema(name: str) -> dict[str, Any]:
    return {"$ref": f"{DOCUMENT_URI}#/components/schemas/{name}"}


def validate(schema: dict[str, Any], instance: Any) -> None:
    validator = Draft202012Validator(schema, registry=registry(), format_checker=format_checker())
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors[:10]
    )


def resolve(node: Any) -> Any:
    """Follow a local `$ref` (`#/components/...`) to its target, as often as needed."""
    while isinstance(node, dict) and "$ref" in node:
        target: Any = document()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def documented_response(path: str, method: str, status: int) -> dict[str, Any]:
    responses = document()["paths"][path][method.lower()]["responses"]
    entry = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX")
    assert entry is not None or status >= 400, f"{method} {path}: {status} is not documented"
    found: dict[str, Any] = resolve(entry or responses["default"])
    return found


def check_response(path: str, method: str, response: requests.Response) -> Any:
    """The response's status, media type, headers and body as `path`/`method` documents them."""
    documented = documented_response(path, method, response.status_code)
    for name, header in documented.get("headers", {}).items():
        header = resolve(header)
        if header.get("required") or name.lower() == "location":
            assert name in response.headers, f"{name} header missing"
    content = documented.get("content")
    if not content:
        assert not response.content, "no body is documented"
        return None
    media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
    assert media_type in content, f"{media_type} is not documented for {response.status_code}"
    if media_type.endswith("json"):
        body = response.json()
        validate(_with_document_base(content[media_type]["schema"]), body)
        return body
    return response.content


def _with_document_base(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema taken out of the document, with its local `$ref`s pointed back at the document."""
    if "$ref" in schema and schema["$ref"].startswith("#/"):
        return {"$ref": DOCUMENT_URI + schema["$ref"]}
    return {"$id": f"{DOCUMENT_URI}-inline", "allOf": [_rebase(schema)]}


def _rebase(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: (DOCUMENT_URI + v if k == "$ref" and v.startswith("#/") else _rebase(v))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rebase(v) for v in node]
    return node


def iter_examples() -> Iterator[tuple[str, Any, Any]]:
    """(where, schema, example) for every example the document gives next to a schema."""
    for name, schema in document()["components"]["schemas"].items():
        for i, example in enumerate(schema.get("examples", [])):
            yield f"components/schemas/{name}/examples/{i}", schema, example
    for name, response in document()["components"]["responses"].items():
        for media_type, content in response.get("content", {}).items():
            if "example" in content:
                yield (
                    f"responses/{name}/{media_type}/example",
                    content["schema"],
                    content["example"],
                )
            for key, example in content.get("examples", {}).items():
                yield f"responses/{name}/{media_type}/{key}", content["schema"], example["value"]
    for path, item in document()["paths"].items():
        for method in (m for m in item if m in HTTP_METHODS):
            body = item[method].get("requestBody", {}).get("content", {})
            for media_type, content in body.items():
                if "example" in content:
                    where = f"{method.upper()} {path} request {media_type}"
                    yield where, content["schema"], content["example"]


def test_the_documents_own_examples_match_their_schemas() -> None:
    examples = list(iter_examples())
    assert len(examples) >= 10
    for where, schema, example in examples:
        try:
            validate(_with_document_base(schema), example)
        except AssertionError as exc:
            raise AssertionError(f"{where}: {exc}") from None


def test_the_validator_rejects_what_the_document_forbids() -> None:
    with pytest.raises(AssertionError, match="thumbprint"):
        validate(document_schema("Key"), {"keyId": "k", "thumbprint": "abc"})
    with pytest.raises(AssertionError, match="is not a 'date-time'"):
        validate(document_schema("Timestamp"), "2026-11-26T17:00:00+01:00")
    with pytest.raises(AssertionError, match="status"):
        validate(document_schema("Problem"), {"title": "x"})


# --- real responses ----------------------------------------------------------------------------
def test_health_matches_the_document(app: RunningApp) -> None:
    response = app.http.get(app.api("/health"))
    assert response.status_code == 200
    assert check_response("/api/health", "GET", response)["status"] == "ok"


def test_keys_match_the_document(app: RunningApp) -> None:
    body = {"tenantId": str(uuid.uuid4()), "applicationId": str(uuid.uuid4()), "displayName": "Doc"}
    created = app.http.post(app.api("/keys"), json=body)
    assert created.status_code == 201, created.text
    key = check_response("/api/keys", "POST", created)
    path = "/api/keys/{keyId}"
    read = app.http.get(app.api(f"/keys/{key['keyId']}"))
    assert check_response(path, "GET", read) == key
    for fmt, media_type in (("cer", "application/pkix-cert"), ("pem", "application/x-pem-file")):
        download = app.http.get(app.api(f"/keys/{key['keyId']}"), params={"format": fmt})
        assert download.headers["Content-Type"].startswith(media_type)
        check_response(path, "GET", download)
        assert download.headers["Content-Disposition"].startswith("attachment; filename=")
    bad_format = app.http.get(app.api(f"/keys/{key['keyId']}"), params={"format": "p12"})
    assert bad_format.status_code == 400
    assert check_response(path, "GET", bad_format)["errors"][0]["field"] == "format"
    # A real GUID, so the store lookup runs (a malformed id is refused before it).
    missing = app.http.get(app.api(f"/keys/{uuid.uuid4()}"))
    assert missing.status_code == 404
    check_response(path, "GET", missing)


def test_problems_match_the_document(app: RunningApp) -> None:
    invalid = app.http.post(app.api("/keys"), json={"tenantId": "nope", "displayName": ""})
    assert invalid.status_code == 400
    problem = check_response("/api/keys", "POST", invalid)
    assert {"tenantId", "applicationId", "displayName"} <= {e["field"] for e in problem["errors"]}
    malformed = app.http.post(
        app.api("/accounts"), data=b"{", headers={"Content-Type": "application/json"}
    )
    assert malformed.status_code == 400
    check_response("/api/accounts", "POST", malformed)
    not_json = app.http.post(
        app.api("/accounts"), data=b"a=b", headers={"Content-Type": "text/plain"}
    )
    assert not_json.status_code == 415
    check_response("/api/accounts", "POST", not_json)
    too_large = app.http.post(
        app.api("/keys"), data=b" " * (65 * 1024), headers={"Content-Type": "application/json"}
    )
    assert too_large.status_code == 413
    check_response("/api/keys", "POST", too_large)
    gone = app.http.delete(app.api(f"/accounts/{uuid.uuid4()}"))
    assert gone.status_code == 404
    check_response("/api/accounts/{id}", "DELETE", gone)
    unknown = app.http.post(app.api(f"/accounts/{uuid.uuid4()}/verify"))
    assert unknown.status_code == 404
    check_response("/api/accounts/{id}/verify", "POST", unknown)
    chunked = app.http.post(  # a generator body goes out chunked, with no Content-Length
        app.api("/keys"), data=iter([b"{}"]), headers={"Content-Type": "application/json"}
    )
    assert chunked.status_code == 411, chunked.text
    assert check_response("/api/keys", "POST", chunked)["type"].endswith("/length-required")


def test_unauthorized_matches_the_document(sandboxed_app: Callable[..., RunningApp]) -> None:
    app = sandboxed_app(
        {
            "AUTH_MODE": "entra",
            "AUTH_AUDIENCE": "api://portal",
            "AUTH_ISSUER": "https://issuer.invalid/{tid}/v2.0",
            "AUTH_JWKS_URI": "https://127.0.0.1:9/keys",
        }
    )
    response = app.http.get(app.api("/accounts"))
    assert response.status_code == 401
    check_response("/api/accounts", "GET", response)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_sandbox_flow_matches_the_document(app: RunningApp, sandbox: Any) -> None:
    customer = Customer(app, sandbox).register()
    customer.generate_key()
    customer.upload_certificate()
    created = app.http.post(
        app.api("/accounts"),
        json={
            "displayName": "Contoso production",
            "tenantId": customer.tenant_id,
            "applicationId": customer.application_id,
            "organizationName": customer.domains[0],
            "keyId": customer.key["keyId"],
        },
    )
    assert created.status_code == 201, created.text
    customer.account = check_response("/api/accounts", "POST", created)
    assert customer.account["status"] == "pending"

    onboarding = app.http.get(app.api("/onboarding"))
    assert check_response("/api/onboarding", "GET", onboarding)["required"] is True

    verified = app.http.post(app.api(f"/accounts/{customer.account['id']}/verify"))
    report = check_response("/api/accounts/{id}/verify", "POST", verified)
    assert report["status"] == "connected", statuses(report)

    sandbox.admin.set_permissions(customer.tenant_id, customer.application_id, [])
    failed = app.http.post(app.api(f"/accounts/{customer.account['id']}/verify"))
    report = check_response("/api/accounts/{id}/verify", "POST", failed)
    assert report["status"] == "action_required"
    assert statuses(report)["admin_consent"] == "fail"

    one = app.http.get(app.api(f"/accounts/{customer.account['id']}"))
    account = check_response("/api/accounts/{id}", "GET", one)
    assert account["lastVerification"] == report and account["status"] == "action_required"
    listed = check_response("/api/accounts", "GET", app.http.get(app.api("/accounts")))
    assert listed["value"] == [account]

    again = app.http.post(
        app.api("/accounts"),
        json={
            "displayName": "Again",
            "tenantId": customer.tenant_id,
            "applicationId": customer.application_id,
            "keyId": customer.key["keyId"],
        },
    )
    assert again.status_code == 409
    assert check_response("/api/accounts", "POST", again)["accountId"] == account["id"]

    unlinked = app.http.delete(app.api(f"/accounts/{account['id']}"))
    assert unlinked.status_code == 204
    assert check_response("/api/accounts/{id}", "DELETE", unlinked) is None

    path = f"/accounts/{account['id']}/history"
    history = check_response("/api/accounts/{id}/history", "GET", app.http.get(app.api(path)))
    assert [e["type"] for e in history["value"]] == ["unlinked", "verified", "verified", "linked"]
    paged = app.http.get(app.api(path), params={"top": 1})
    assert "nextLink" in check_response("/api/accounts/{id}/history", "GET", paged)
    feed = check_response("/api/events", "GET", app.http.get(app.api("/events")))
    assert [e["type"] for e in feed["value"]] == ["linked", "verified", "verified", "unlinked"]
    for route, bad in (("/accounts", {"top": "0"}), ("/events", {"after": "x"})):
        refused = app.http.get(app.api(route), params=bad)
        assert refused.status_code == 400
        check_response("/api" + route, "GET", refused)
    missing = app.http.get(app.api(f"/accounts/{uuid.uuid4()}/history"))
    assert missing.status_code == 404
    check_response("/api/accounts/{id}/history", "GET", missing)


def test_a_paged_list_matches_the_document(app: RunningApp) -> None:
    for _ in range(3):
        key = app.http.post(
            app.api("/keys"),
            json={"tenantId": str(uuid.uuid4()), "applicationId": str(uuid.uuid4()),
                  "displayName": "Prod"},
        ).json()  # fmt: skip
        linked = app.http.post(
            app.api("/accounts"),
            json={"displayName": "P", "tenantId": key["tenantId"],
                  "applicationId": key["applicationId"], "keyId": key["keyId"]},
        )  # fmt: skip
        assert linked.status_code == 201
    first = check_response("/api/accounts", "GET", app.http.get(app.api("/accounts?top=2")))
    assert len(first["value"]) == 2
    last = check_response("/api/accounts", "GET", app.http.get(app.url + first["nextLink"]))
    assert len(last["value"]) == 1 and "nextLink" not in last


# --- input rules the schemas state exactly ----------------------------------------------------
def parameter_pattern(name: str) -> str:
    pattern: str = document()["components"]["parameters"][name]["schema"]["pattern"]
    return pattern


def anchored(pattern: str) -> re.Pattern[str]:
    """A document pattern as ECMA-262 reads `^...$` (Python's `$` also matches before a final
    newline, ECMA's does not)."""
    return re.compile(pattern.removeprefix("^").removesuffix("$"))


def test_the_continuation_patterns_are_made_from_the_apps_formats() -> None:
    assert parameter_pattern("AccountsAfter") == base64_patterns.account_after()
    assert parameter_pattern("HistoryAfter") == base64_patterns.history_after()
    assert parameter_pattern("FeedAfter") == r"^[0-9]{1,16}$"


def after_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["after"][0]


def test_the_continuations_the_app_hands_out_match_the_document(
    app: RunningApp, resources: dict[str, str]
) -> None:
    for _ in range(2):  # three accounts, so a page of one has a continuation
        body = {"tenantId": str(uuid.uuid4()), "applicationId": str(uuid.uuid4())}
        key = app.http.post(app.api("/keys"), json={**body, "displayName": "x"}).json()
        linked = app.http.post(
            app.api("/accounts"), json={**body, "displayName": "x", "keyId": key["keyId"]}
        )
        assert linked.status_code == 201, linked.text
    seen = 0
    link = "/api/accounts?top=1"
    while link:
        page = app.http.get(app.url + link).json()
        link = page.get("nextLink")
        if link:
            assert anchored(parameter_pattern("AccountsAfter")).fullmatch(after_of(link)), link
            seen += 1
    assert seen == 2
    account_id = resources["{id}"]
    for _ in range(3):  # history: linked, then three renamings
        renamed = app.http.patch(app.api(f"/accounts/{account_id}"), json={"displayName": _ * "y"})
        assert renamed.status_code in (200, 400)
    history_page = app.http.get(app.api(f"/accounts/{account_id}/history"), params={"top": 1})
    link = history_page.json()["nextLink"]
    assert anchored(parameter_pattern("HistoryAfter")).fullmatch(after_of(link)), link
    feed = app.http.get(app.api("/events")).json()
    assert anchored(parameter_pattern("FeedAfter")).fullmatch(feed["cursor"])


EVERY_CONTINUATION = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def strings_of(parameter: str) -> st.SearchStrategy[str]:
    """Strings matching a parameter's pattern (read when the test runs, not when collected)."""
    return st.deferred(
        lambda: st.from_regex(anchored(parameter_pattern(parameter)), fullmatch=True)
    )


@EVERY_CONTINUATION
@given(after=strings_of("AccountsAfter"))
def test_every_string_of_the_accounts_after_pattern_is_accepted(
    app: RunningApp, after: str
) -> None:
    listed = app.http.get(app.api("/accounts"), params={"after": after})
    assert listed.status_code == 200, listed.text


@EVERY_CONTINUATION
@given(after=strings_of("HistoryAfter"))
def test_every_string_of_the_history_after_pattern_is_accepted(
    app: RunningApp, resources: dict[str, str], after: str
) -> None:
    path = f"/accounts/{resources['{id}']}/history"
    listed = app.http.get(app.api(path), params={"after": after})
    assert listed.status_code == 200, listed.text


def schema_pattern(name: str) -> str:
    pattern: str = document()["components"]["schemas"][name]["pattern"]
    return pattern


def accepted_as_text(value: str, max_len: int) -> bool:
    fields = Fields({"name": value})
    fields.text("name", max_len=max_len)
    return not fields.problems.errors


def test_the_text_pattern_is_the_apps_text_rule() -> None:
    """Display and organization names: the pattern refuses exactly the characters the app
    refuses (control, separator and bidi control characters), and names of whitespace only.
    Each code point of the Basic Multilingual Plane, and every 97th beyond it, alone and
    between two letters."""
    assert schema_pattern("OrganizationName") == schema_pattern("DisplayName")
    pattern = anchored(schema_pattern("DisplayName"))
    points = [*range(0xD800), *range(0xE000, 0x10000), *range(0x10000, 0x110000, 97)]
    wrong = [
        f"U+{point:04X} in {value!r}"
        for point in points
        for value in (chr(point), f"a{chr(point)}b", f" {chr(point)} ")
        if bool(pattern.fullmatch(value)) != accepted_as_text(value, 64)
    ]
    assert not wrong, wrong[:20]
    # Kept as given: leading and trailing spaces are part of a name.
    assert pattern.fullmatch("  Contoso  ") and accepted_as_text("  Contoso  ", 64)


# --- the change feed's 410 ---------------------------------------------------------------------
def test_an_expired_cursor_matches_the_document(app: RunningApp) -> None:
    """A reader behind retention gets the documented 410, whose `oldestCursor` (the document's
    link from the 410 back to the feed) reads on from the oldest event kept."""
    store = app.context.accounts
    made = stored_key("local-dev")  # written through the store: no `linked` event of today first
    store.add_key(made)
    current = account_for(made)
    store.link(current)
    for days in (400, 400, 0):  # two events past retention, one kept
        stamped = replace(
            history.event("local-dev", current.id, "verified"),
            at=datetime.now().astimezone() - timedelta(days=days),
        )
        current = store.update_account(current.updated(status="connected"), [stamped])
    first = check_response(
        "/api/events", "GET", app.http.get(app.api("/events"), params={"top": 1})
    )
    housekeeping.run(app.context, datetime.now().astimezone())
    behind = app.http.get(app.api("/events"), params={"after": first["cursor"]})
    assert behind.status_code == 410, behind.text
    problem = check_response("/api/events", "GET", behind)
    assert problem["type"].endswith("/problems/cursor-expired")
    link = document()["components"]["responses"]["CursorExpired"]["links"]["StartAgain"]
    assert link["parameters"]["after"] == "$response.body#/oldestCursor"
    again = app.http.get(app.api("/events"), params={"after": problem["oldestCursor"]})
    assert check_response("/api/events", "GET", again)["value"][-1]["type"] == "verified"


# --- certificate renewal, PATCH and If-Match ---------------------------------------------------
ROTATION = "/api/accounts/{id}/rotation"


def rotation_url(app: RunningApp, account_id: str) -> str:
    return app.api(f"/accounts/{account_id}/rotation")


def test_a_manual_renewal_matches_the_document(app: RunningApp, sandbox: Any) -> None:
    customer = Customer(app, sandbox).link_all_the_way()
    assert customer.verify()["status"] == "connected"
    url = rotation_url(app, customer.account["id"])
    for method in ("GET", "DELETE"):  # never renewed
        never = app.http.request(method, url)
        assert never.status_code == 404, f"{method}: {never.text}"
        check_response(ROTATION, method, never)
    too_short = app.http.post(url, json={"validityDays": 1})
    assert too_short.status_code == 400
    assert check_response(ROTATION, "POST", too_short)["errors"][0]["field"] == "validityDays"
    not_json = app.http.post(url, data=b"x", headers={"Content-Type": "text/plain"})
    assert not_json.status_code == 415
    check_response(ROTATION, "POST", not_json)

    started = app.http.post(url)  # no body: the defaults
    assert started.status_code == 201, started.text
    rotation = check_response(ROTATION, "POST", started)
    assert started.headers["Location"] == f"/api/accounts/{customer.account['id']}/rotation"
    assert rotation["status"] == "awaiting_upload" and rotation["appRegistration"] is None
    again = app.http.post(url, json={})
    assert again.status_code == 409
    assert check_response(ROTATION, "POST", again)["keyId"] == rotation["key"]["keyId"]
    assert check_response(ROTATION, "GET", app.http.get(url)) == rotation
    waiting = app.http.post(app.api(f"/accounts/{customer.account['id']}/verify"))
    report = check_response("/api/accounts/{id}/verify", "POST", waiting)
    assert report["rotation"]["status"] == "awaiting_upload"

    customer.key = rotation["key"]
    customer.upload_certificate()
    switched = app.http.post(app.api(f"/accounts/{customer.account['id']}/verify"))
    report = check_response("/api/accounts/{id}/verify", "POST", switched)
    assert report["rotation"]["status"] == "completed", report["rotation"]
    read = app.http.get(app.api(f"/accounts/{customer.account['id']}"))
    account = check_response("/api/accounts/{id}", "GET", read)
    assert account["keyId"] == rotation["key"]["keyId"]
    assert account["rotation"]["retiresAt"] is not None
    finished = app.http.delete(url)
    assert finished.status_code == 409
    check_response(ROTATION, "DELETE", finished)


def test_a_cancelled_renewal_matches_the_document(
    app: RunningApp, resources: dict[str, str]
) -> None:
    url = rotation_url(app, resources["{id}"])
    started = app.http.post(url, json={"keySize": 3072, "validityDays": 90})
    rotation = check_response(ROTATION, "POST", started)
    assert rotation["key"]["keySize"] == 3072
    cancelled = app.http.delete(url)
    assert cancelled.status_code == 204
    assert check_response(ROTATION, "DELETE", cancelled) is None
    after = check_response(ROTATION, "GET", app.http.get(url))
    assert after["status"] == "cancelled" and after["completedAt"] is not None
    gone = app.http.get(app.api(f"/keys/{rotation['key']['keyId']}"))
    assert gone.status_code == 404
    history = app.http.get(app.api(f"/accounts/{resources['{id}']}/history"))
    types = [
        e["type"] for e in check_response("/api/accounts/{id}/history", "GET", history)["value"]
    ]
    assert types[:2] == ["rotation_cancelled", "rotation_started"]


def test_a_refused_automatic_renewal_matches_the_document(app: RunningApp, sandbox: Any) -> None:
    customer = Customer(app, sandbox).link_all_the_way()
    assert customer.verify()["status"] == "connected"  # the report names the app's object id
    account_path = app.api(f"/accounts/{customer.account['id']}")
    patched = app.http.patch(
        account_path,
        data=b'{"certificateRenewal": "automatic"}',
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert patched.status_code == 200, patched.text
    assert (
        check_response("/api/accounts/{id}", "PATCH", patched)["certificateRenewal"] == "automatic"
    )
    # A tenant policy allowing certificates of at most 180 days: Graph refuses a 365-day one.
    sandbox.admin.set_certificate_policy(customer.tenant_id, 180)
    started = app.http.post(rotation_url(app, customer.account["id"]), json={"validityDays": 365})
    rotation = check_response(ROTATION, "POST", started)
    assert rotation["renewal"] == "automatic"
    assert rotation["appRegistration"] == {"addKey": "refused", "removeKey": None}
    assert rotation["status"] == "awaiting_upload" and "policy" in rotation["detail"]
    account = check_response("/api/accounts/{id}", "GET", app.http.get(account_path))
    assert account["rotation"] == rotation


def test_patch_and_if_match_match_the_document(app: RunningApp, resources: dict[str, str]) -> None:
    path = "/api/accounts/{id}"
    url = app.api(f"/accounts/{resources['{id}']}")
    read = app.http.get(url)
    check_response(path, "GET", read)
    etag = read.headers["ETag"]
    patched = app.http.patch(
        url,
        json={"displayName": "Renamed", "organizationName": None},
        headers={"If-Match": etag},
    )
    assert patched.status_code == 200, patched.text
    account = check_response(path, "PATCH", patched)
    assert (account["displayName"], account["organizationName"]) == ("Renamed", None)
    assert patched.headers["ETag"] != etag
    for method in ("PATCH", "DELETE"):
        stale = app.http.request(
            method, url, json={"displayName": "Lost"}, headers={"If-Match": etag}
        )
        assert stale.status_code == 412, f"{method}: {stale.text}"
        assert check_response(path, method, stale)["type"].endswith("/precondition-failed")
    assert app.http.get(url).json()["displayName"] == "Renamed"  # neither applied
    unknown_field = app.http.patch(url, json={"tenantId": str(uuid.uuid4())})
    assert unknown_field.status_code == 400
    assert check_response(path, "PATCH", unknown_field)["errors"][0]["field"] == "tenantId"
    not_json = app.http.patch(url, data=b"x", headers={"Content-Type": "text/plain"})
    assert not_json.status_code == 415
    check_response(path, "PATCH", not_json)
    missing = app.http.patch(app.api(f"/accounts/{uuid.uuid4()}"), json={"displayName": "x"})
    assert missing.status_code == 404
    check_response(path, "PATCH", missing)
    unlinked = app.http.delete(url, headers={"If-Match": patched.headers["ETag"]})
    assert unlinked.status_code == 204
    check_response(path, "DELETE", unlinked)
