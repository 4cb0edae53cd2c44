"""The HTTP edge's pieces on their own: strict JSON, media types, 405/401 headers, log-safe
failures. The same rules are tested through the routes in tests/e2e/test_input_rules.py."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func
import pytest

from shared.app.http_edge import endpoint, read_json_object
from shared.core.errors import AppError, MethodNotAllowed, Unauthorized
from shared.core.validation import Fields, has_control_characters
from shared.support import failure, strict_json


def request(body: bytes, content_type: str | None = "application/json", **kw: Any) -> Any:
    headers = {"Content-Type": content_type} if content_type else {}
    return func.HttpRequest(
        method=kw.get("method", "POST"),
        url="http://localhost/api/x",
        headers=headers,
        body=body,
        route_params=kw.get("route_params", {}),
    )


@pytest.mark.parametrize("depth", [1, 2, 63, 64])
def test_nesting_up_to_64_levels_is_json(depth: int) -> None:
    assert strict_json.loads(("[" * depth + "]" * depth).encode()) is not None


@pytest.mark.parametrize("depth", [65, 1000, 60000])
def test_nesting_deeper_is_refused_without_recursion(depth: int) -> None:
    with pytest.raises(strict_json.JsonRefused, match="deeper than 64"):
        strict_json.loads(("{" + '"a":[' * depth).encode())


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"a": "[" * 100 + '\\"{' * 50, "b": ["]"]})
    assert strict_json.loads(text.encode())["b"] == ["]"]


@pytest.mark.parametrize(
    "literal",
    ["9007199254740993", "-9007199254740993", "1" * 4301, "1e16", "-1.0e300", "1e999"],
)
def test_numbers_outside_2_53_are_refused(literal: str) -> None:
    with pytest.raises(strict_json.JsonRefused, match="2\\^53"):
        strict_json.loads(f'{{"n": {literal}}}'.encode())


@pytest.mark.parametrize("literal", ["9007199254740992", "-9007199254740992", "0", "-0", "1.5"])
def test_numbers_inside_2_53_are_kept_with_their_type(literal: str) -> None:
    value = strict_json.loads(f'{{"n": {literal}}}'.encode())["n"]
    assert value == json.loads(literal) and type(value) is type(json.loads(literal))


@pytest.mark.parametrize(
    "text",
    [
        '{"n": NaN}',
        '{"n": Infinity}',
        '{"n": -Infinity}',
        '{"a": 1, "a": 1}',
        '[{"b": {"c": 1, "c": 2}}]',
        '"\\udc00"',
        '{"\\ud800": 1}',
    ],
)
def test_constants_duplicates_and_lone_surrogates_are_refused(text: str) -> None:
    with pytest.raises(strict_json.JsonRefused):
        strict_json.loads(text.encode())


def test_a_surrogate_pair_is_one_character() -> None:
    assert strict_json.loads(b'"\\ud83d\\ude00"') == "\U0001f600"


@pytest.mark.parametrize(
    ("content_type", "accepted"),
    [
        ("application/json", True),
        ('APPLICATION/Json ; Charset = "UTF-8"', True),
        ("application/json; charset=utf8", True),
        ("application/json; boundary=x", True),
        ("application/json; charset=latin-1", False),
        ("application/json; charset=utf-8-sig", False),
        ("application/json; charset*=utf-8''x", False),
        ("application/json-seq", False),
        (None, False),
        ("", False),
    ],
)
def test_media_type_and_charset(content_type: str | None, accepted: bool) -> None:
    req = request(b"{}", content_type)
    if accepted:
        assert read_json_object(req) == {}
    else:
        with pytest.raises(AppError) as refused:
            read_json_object(req)
        assert refused.value.status == 415


def test_integer_choices_take_integers_only() -> None:
    for value in (2048.0, True, "2048", [2048], None):
        fields = Fields({"keySize": value})
        chosen = fields.one_of("keySize", (2048, 3072), default=3072)
        assert chosen == 3072
        assert [e.field for e in fields.problems.errors] == ([] if value is None else ["keySize"])
    fields = Fields({"cloud": ["global"]})  # an unhashable value is just wrong, never a 500
    assert fields.one_of("cloud", ("global",), default="auto") == "auto"
    assert Fields({"keySize": 3072}).one_of("keySize", (2048, 3072), default=2048) == 3072


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ("\u200d\u200c\u200e\u200f\ufeff\u00ad", False),  # ZWJ, ZWNJ, LRM, RLM, BOM, soft hyphen
        ("\u202a", True), ("\u202e", True), ("\u2066", True), ("\u2069", True),
        ("\u2028", True), ("\u2029", True), ("\x00", True), ("\x9f", True),
        ("\u2065", False), ("\u206a", False), ("\u2030", False),
    ],
)  # fmt: skip
def test_control_characters(text: str, refused: bool) -> None:
    assert has_control_characters(text) is refused


def test_405_and_options_name_the_allowed_methods() -> None:
    @endpoint("t", lambda req: ("GET", "DELETE"))
    def handler(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("ok")

    refused = handler(request(b"", method="PUT"))
    assert refused.status_code == 405 and refused.headers["Allow"] == "GET, DELETE"
    assert json.loads(refused.get_body())["status"] == 405
    options = handler(request(b"", method="OPTIONS"))
    assert options.status_code == 204 and options.headers["Allow"] == "GET, DELETE"
    assert handler(request(b"", method="GET")).get_body() == b"ok"
    assert MethodNotAllowed("x", allow=("POST",)).headers() == {"Allow": "POST"}


def test_the_bearer_challenge_names_an_error_only_for_a_sent_token() -> None:
    assert Unauthorized("x", token_sent=False).headers() == {"WWW-Authenticate": "Bearer"}
    assert Unauthorized("x").headers() == {"WWW-Authenticate": 'Bearer error="invalid_token"'}


def test_an_unexpected_error_is_logged_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @endpoint("t", lambda req: ("GET",))
    def handler(req: func.HttpRequest) -> func.HttpResponse:
        raise TypeError("secret-value-in-message")

    response = handler(request(b"", method="GET"))
    assert response.status_code == 500
    assert b"secret-value" not in response.get_body() and b"TypeError" not in response.get_body()
    logged = [r for r in caplog.records if r.name == "m365link.http" and r.levelname == "ERROR"]
    assert len(logged) == 1 and logged[0].exc_info is None
    message = logged[0].getMessage()
    assert "secret-value" not in message
    assert "TypeError at tests/unit/test_http_edge.py:" in message


def test_failure_names_the_deepest_frame_of_the_app() -> None:
    try:
        json.loads("{", object_hook=None)
    except ValueError as exc:
        described = failure.describe(exc)
    assert described.startswith("JSONDecodeError at tests/unit/test_http_edge.py:")
