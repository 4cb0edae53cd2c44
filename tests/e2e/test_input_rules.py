"""API.md's "Input rules that hold on every route", through the local host.

GUID form and case, integer fields, strict JSON, Content-Type, the 64 KiB body limit, the
`WWW-Authenticate` challenge and display names. Each case asserts what the caller sees and that a
refused request wrote nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from tests.conftest import RunningApp
from tests.e2e.customer import Customer

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
APP = "0b5c6a1e-3f1d-4b7e-9a55-1c2d3e4f5a6b"
VALID = {"tenantId": TENANT, "applicationId": APP, "displayName": "Contoso production"}
LIMIT = 64 * 1024


@pytest.fixture
def local_app(start_app: Callable[..., RunningApp]) -> RunningApp:
    return start_app()


def post_raw(app: RunningApp, path: str, data: Any, content_type: str = "application/json") -> Any:
    return app.http.post(app.api(path), data=data, headers={"Content-Type": content_type})


def nothing_stored(app: RunningApp) -> bool:
    return not list(app.context.keys.list()) and not list(app.context.accounts.list_keys())


def new_key(app: RunningApp, **change: Any) -> dict[str, Any]:
    response = app.http.post(app.api("/keys"), json={**VALID, "applicationId": APP, **change})
    assert response.status_code == 201, response.text
    key: dict[str, Any] = response.json()
    return key


def connect(app: RunningApp, key: dict[str, Any], **change: Any) -> requests.Response:
    body = {
        "displayName": "Contoso production",
        "tenantId": key["tenantId"],
        "applicationId": key["applicationId"],
        "keyId": key["keyId"],
        **change,
    }
    return app.http.post(app.api("/accounts"), json=body)


def assert_names(response: requests.Response, field: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == [field]


# --- GUIDs --------------------------------------------------------------------------------------
def not_quite(guid: str) -> list[str]:
    """A GUID with what API.md forbids around it: braces, whitespace, a trailing newline."""
    return [
        guid + "\n",
        guid + "\r\n",
        "\n" + guid,
        "{" + guid + "}",
        " " + guid,
        guid + " ",
        guid + "\t",
        guid.replace("-", ""),
        "urn:uuid:" + guid,
        guid + "\x00",
    ]


@pytest.mark.parametrize("field", ["tenantId", "applicationId"])
@pytest.mark.parametrize("value", not_quite(TENANT), ids=repr)
def test_a_key_with_a_guid_not_exactly_in_form_is_a_400(
    app: RunningApp, field: str, value: str
) -> None:
    response = app.http.post(app.api("/keys"), json={**VALID, field: value})
    assert_names(response, field)
    assert nothing_stored(app)


def test_a_key_for_upper_case_ids_is_stored_and_answered_lower_case(app: RunningApp) -> None:
    response = app.http.post(
        app.api("/keys"), json={**VALID, "tenantId": TENANT.upper(), "applicationId": APP.upper()}
    )
    assert response.status_code == 201, response.text
    key = response.json()
    assert (key["tenantId"], key["applicationId"]) == (TENANT, APP)
    assert key["keyId"] == key["keyId"].lower()
    # Any case finds it; the answer is the one lower-case key.
    assert app.http.get(app.api(f"/keys/{key['keyId'].upper()}")).json() == key
    download = app.http.get(app.api(f"/keys/{key['keyId'].upper()}"), params={"format": "cer"})
    assert download.status_code == 200


@pytest.mark.parametrize("suffix", ["%0A", "%0D%0A", "%20", "%7D", "%09"])
def test_a_path_id_not_exactly_a_guid_is_a_404_on_every_route(app: RunningApp, suffix: str) -> None:
    key = new_key(app)
    account = connect(app, key).json()
    for url, method in (
        (f"/keys/{key['keyId']}{suffix}", "GET"),
        (f"/keys/{key['keyId']}{suffix}?format=cer", "GET"),
        (f"/keys/%7B{key['keyId']}{suffix}", "GET"),
        (f"/accounts/{account['id']}{suffix}", "GET"),
        (f"/accounts/{account['id']}{suffix}/verify", "POST"),
        (f"/accounts/{account['id']}{suffix}", "DELETE"),
    ):
        response = app.http.request(method, app.api(url))
        assert response.status_code == 404, f"{method} {url}: {response.status_code}"
        assert response.headers["Content-Type"] == "application/problem+json"
    # The DELETE above removed nothing.
    assert app.http.get(app.api(f"/accounts/{account['id']}")).status_code == 200


@pytest.mark.parametrize("field", ["tenantId", "applicationId", "keyId"])
def test_a_connect_with_a_guid_not_exactly_in_form_is_a_400(app: RunningApp, field: str) -> None:
    key = new_key(app)
    for value in not_quite(key[field]):
        response = connect(app, key, **{field: value})
        assert_names(response, field)
    assert app.http.get(app.api("/accounts")).json() == {"value": []}


def test_the_same_pair_in_upper_case_is_the_same_pair(app: RunningApp) -> None:
    first_key = new_key(app)
    upper_key = {**first_key, "keyId": first_key["keyId"].upper()}
    first = connect(
        app, upper_key, tenantId=TENANT.upper(), applicationId=APP.upper(), keyId=upper_key["keyId"]
    )
    assert first.status_code == 201, first.text
    account = first.json()
    assert (account["tenantId"], account["applicationId"]) == (TENANT, APP)
    assert account["keyId"] == first_key["keyId"]
    # The same tenant and application, other case, with a second key of theirs: a 409 (same pair).
    second_key = new_key(app, tenantId=TENANT.upper())
    again = connect(app, second_key, tenantId=TENANT.upper(), applicationId=APP)
    assert again.status_code == 409, again.text
    assert again.json()["accountId"] == account["id"]
    assert [a["id"] for a in app.http.get(app.api("/accounts")).json()["value"]] == [account["id"]]
    assert app.http.get(app.api(f"/accounts/{account['id'].upper()}")).json() == account


def test_verify_by_an_upper_case_id_answers_the_lower_case_account(
    sandboxed_app: Callable[..., RunningApp], sandbox: Any
) -> None:
    app = sandboxed_app()
    customer = Customer(app, sandbox).register()
    tenant, application = customer.tenant_id, customer.application_id
    customer.tenant_id, customer.application_id = tenant.upper(), application.upper()
    customer.generate_key()
    account = customer.connect()
    assert (account["tenantId"], account["applicationId"]) == (tenant, application)
    customer.tenant_id, customer.application_id = tenant, application
    customer.upload_certificate()
    response = app.http.post(app.api(f"/accounts/{account['id'].upper()}/verify"))
    assert response.status_code == 200, response.text
    assert response.json()["accountId"] == account["id"]
    assert response.json()["status"] == "connected"


# --- integers -----------------------------------------------------------------------------------
INTEGER_CASES = [
    ("keySize", "2048.0"),
    ("keySize", '"2048"'),
    ("keySize", "true"),
    ("keySize", "2e3"),
    ("keySize", "2.048e3"),
    ("keySize", "[2048]"),
    ("validityDays", "365.0"),
    ("validityDays", '"365"'),
    ("validityDays", "true"),
    ("validityDays", "3.65e2"),
    ("validityDays", "1e1"),
]


@pytest.mark.parametrize(("field", "literal"), INTEGER_CASES)
def test_an_integer_field_takes_a_json_integer_only(
    local_app: RunningApp, field: str, literal: str
) -> None:
    body = json.dumps(VALID)[:-1] + f', "{field}": {literal}}}'
    response = post_raw(local_app, "/keys", body.encode())
    assert_names(response, field)
    assert nothing_stored(local_app)


# --- JSON ---------------------------------------------------------------------------------------
def with_member(name: str, literal: str) -> bytes:
    """VALID with one more member, written as raw JSON text."""
    return (json.dumps(VALID)[:-1] + f', "{name}": {literal}}}').encode()


REFUSED_JSON = {
    "an integer of 4,301 digits": with_member("pad", "1" * 4301),
    "an integer of 60,000 digits": with_member("pad", "9" * 60000),
    "2^53 + 1": with_member("pad", str(2**53 + 1)),
    "-(2^53 + 1)": with_member("pad", str(-(2**53) - 1)),
    "1e300": with_member("pad", "1e300"),
    "1e400 (infinite as a float)": with_member("pad", "1e400"),
    "NaN": with_member("pad", "NaN"),
    "Infinity": with_member("pad", "Infinity"),
    "-Infinity": with_member("pad", "-Infinity"),
    "a duplicate key": with_member("tenantId", json.dumps(TENANT)),
    "a duplicate unknown key": with_member("x", "1")[:-1] + b', "x": 1}',
    "a duplicate key in a nested object": with_member("pad", '{"a": 1, "a": 2}'),
    "65 levels of nesting": with_member("pad", "[" * 64 + "]" * 64),
    "30,000 levels of nesting": with_member("pad", "[" * 30000 + "]" * 30000),
    "9,000 nested objects": b'{"a":' * 9000 + b"1" + b"}" * 9000,
    "invalid UTF-8": with_member("pad", '"\xff"').replace(b"\xc3\xbf", b"\xff"),
    "a lone surrogate": json.dumps({**VALID, "displayName": "\ud800"}).encode(),
    "a UTF-8 byte order mark": b"\xef\xbb\xbf" + json.dumps(VALID).encode(),
    "an empty body": b"",
    "a bare string": b'"x"',
    "trailing data": json.dumps(VALID).encode() + b" {}",
}


@pytest.mark.parametrize("data", REFUSED_JSON.values(), ids=REFUSED_JSON.keys())
def test_json_outside_the_input_rules_is_a_400_never_a_500(
    local_app: RunningApp, data: bytes
) -> None:
    assert len(data) <= LIMIT
    response = post_raw(local_app, "/keys", data)
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == 400
    assert nothing_stored(local_app)


@pytest.mark.parametrize(
    "literal",
    [str(2**53), str(-(2**53)), "[" * 63 + "]" * 63, '{"a": {"b": 1}, "c": {"b": 2}}', "-0", "1.5"],
    ids=["2^53", "-2^53", "64 levels", "equal keys in two objects", "-0", "a fraction"],
)
def test_json_inside_the_input_rules_is_accepted(local_app: RunningApp, literal: str) -> None:
    response = post_raw(local_app, "/keys", with_member("pad", literal))
    assert response.status_code == 201, response.text


def test_a_refused_body_on_connect_is_a_400_too(local_app: RunningApp) -> None:
    key = new_key(local_app)
    body = json.dumps({"displayName": "x", "tenantId": TENANT, "applicationId": APP})
    for tail in (f', "keyId": "{key["keyId"]}", "keyId": "{key["keyId"]}"}}', ', "x": NaN}'):
        response = post_raw(local_app, "/accounts", (body[:-1] + tail).encode())
        assert response.status_code == 400, response.text
    assert local_app.http.get(local_app.api("/accounts")).json() == {"value": []}


# --- Content-Type -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "Application/JSON",
        "APPLICATION/JSON; CHARSET=UTF-8",
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        'application/json; charset="utf-8"',
    ],
)
def test_content_type_is_matched_case_insensitively(
    local_app: RunningApp, content_type: str
) -> None:
    response = post_raw(local_app, "/keys", json.dumps(VALID).encode(), content_type)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=latin-1",
        "application/json; charset=ISO-8859-1",
        "application/json; charset=utf-16",
        "application/json; charset=no-such-charset",
        "application/jsonx",
        "text/json",
        "application/x-www-form-urlencoded",
        "json",
    ],
)
def test_another_media_type_or_charset_is_a_415(local_app: RunningApp, content_type: str) -> None:
    response = post_raw(local_app, "/keys", json.dumps(VALID).encode(), content_type)
    assert response.status_code == 415, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert nothing_stored(local_app)


# --- the 64 KiB limit ---------------------------------------------------------------------------
def body_of(size: int, pad_char: str = "x") -> bytes:
    """A valid key request of exactly `size` bytes, padded with an unknown field."""
    start = json.dumps({**VALID, "pad": ""}, ensure_ascii=False).encode()
    room = size - len(start)
    width = len(pad_char.encode())
    pad = pad_char * (room // width) + "y" * (room % width)
    data = json.dumps({**VALID, "pad": pad}, ensure_ascii=False).encode()
    assert len(data) == size
    return data


def chunked(data: bytes, size: int = 1000) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest.mark.parametrize(
    "pad_char", ["x", "é", "€", "😀"], ids=["ascii", "2-byte", "3-byte", "4-byte"]
)
def test_a_body_of_64_kib_is_accepted_and_one_byte_more_is_a_413(
    local_app: RunningApp, pad_char: str
) -> None:
    exactly = body_of(LIMIT, pad_char)
    response = post_raw(local_app, "/keys", exactly)
    assert response.status_code == 201, response.text
    # One byte over: with multi-byte padding far fewer characters than bytes, still refused.
    over = body_of(LIMIT + 1, pad_char)
    response = post_raw(local_app, "/keys", over)
    assert response.status_code == 413, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert len(list(local_app.context.accounts.list_keys())) == 1


def test_a_chunked_body_never_reaches_the_app_and_is_a_411(local_app: RunningApp) -> None:
    # The Functions host hands a body to the worker only when Content-Length is over 0
    # (ToRpcHttp): a chunked one never arrives, so the app refuses the request, whatever its size.
    for data in (chunked(body_of(LIMIT)), chunked(b" " * (4 * 1024 * 1024), 64 * 1024)):
        refused = local_app.http.post(
            local_app.api("/keys"), data=data, headers={"Content-Type": "application/json"}
        )
        assert refused.request.headers.get("Transfer-Encoding") == "chunked"
        assert "Content-Length" not in refused.request.headers
        assert refused.status_code == 411, refused.text
        assert refused.headers["Content-Type"] == "application/problem+json"
    assert len(list(local_app.context.accounts.list_keys())) == 0


def test_the_host_refuses_a_body_over_its_own_limit_before_the_function(
    start_app: Callable[..., RunningApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    # As the Functions host does with FUNCTIONS_REQUEST_BODY_SIZE_LIMIT: a bare 413, unread.
    monkeypatch.setenv("FUNCTIONS_REQUEST_BODY_SIZE_LIMIT", "1000")
    app = start_app()
    response = post_raw(app, "/keys", b" " * 1001)
    assert response.status_code == 413 and response.content == b""
    assert post_raw(app, "/keys", json.dumps(VALID).encode()).status_code == 201


# --- WWW-Authenticate (RFC 6750 section 3.1) ----------------------------------------------------
def test_the_challenge_names_an_error_only_when_a_token_was_sent(
    start_app: Callable[..., RunningApp],
) -> None:
    app = start_app(
        {
            "AUTH_MODE": "entra",
            "AUTH_AUDIENCE": "api://portal",
            "AUTH_ISSUER": "https://issuer.invalid/{tid}/v2.0",
            "AUTH_JWKS_URI": "https://127.0.0.1:9/keys",
        }
    )
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}):
        response = app.http.get(app.api("/accounts"), headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer", headers
    sent = app.http.get(app.api("/accounts"), headers={"Authorization": "Bearer not-a-jwt"})
    assert sent.status_code == 401
    assert sent.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


# --- display names ------------------------------------------------------------------------------
ALLOWED_NAMES = {
    "emoji with zero-width joiners": "\U0001f469\u200d\U0001f4bb \U0001f3f3\ufe0f\u200d\U0001f308",
    "a right-to-left mark": "\u05e9\u05dc\u05d5\u05dd\u200f prod",
    "a left-to-right mark": "Prod\u200e EU",
    "a zero-width non-joiner": "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
}
REFUSED_NAMES = {
    "right-to-left override": "invoice\u202egpj.cer",
    "left-to-right embedding": "a\u202ab",
    "pop directional formatting": "a\u202cb",
    "first strong isolate": "a\u2068b",
    "pop directional isolate": "a\u2069b",
    "line separator": "a\u2028b",
    "paragraph separator": "a\u2029b",
    "next line (C1)": "a\u0085b",
    "delete": "a\x7fb",
    "carriage return": "a\rb",
}


@pytest.mark.parametrize("name", ALLOWED_NAMES.values(), ids=ALLOWED_NAMES.keys())
def test_format_characters_of_ordinary_text_are_allowed(local_app: RunningApp, name: str) -> None:
    response = local_app.http.post(local_app.api("/keys"), json={**VALID, "displayName": name})
    assert response.status_code == 201, response.text
    key = response.json()
    assert key["displayName"] == name
    download = local_app.http.get(local_app.api(f"/keys/{key['keyId']}"), params={"format": "pem"})
    disposition = download.headers["Content-Disposition"]
    assert disposition.isascii() and disposition.endswith('.pem"')
    assert not any(ch in disposition[len('attachment; filename="') : -1] for ch in '/\\"')


@pytest.mark.parametrize("name", REFUSED_NAMES.values(), ids=REFUSED_NAMES.keys())
def test_control_and_bidi_override_characters_are_refused(local_app: RunningApp, name: str) -> None:
    response = local_app.http.post(local_app.api("/keys"), json={**VALID, "displayName": name})
    assert_names(response, "displayName")
    assert nothing_stored(local_app)
