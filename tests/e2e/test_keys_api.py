"""POST /api/keys and GET /api/keys/{keyId} through the local host, as the portal calls them."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from shared.core import certificates
from tests import openssl_cli
from tests.conftest import RunningApp

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
APP = "11111111-2222-3333-4444-555555555555"
VALID = {"tenantId": TENANT, "applicationId": APP, "displayName": "Contoso production"}


@pytest.fixture
def app(start_app: Callable[..., RunningApp]) -> RunningApp:
    return start_app()


def create(app: RunningApp, body: Any = None, **kwargs: Any) -> Any:
    return app.http.post(app.api("/keys"), json=VALID if body is None else body, **kwargs)


def stored_state(app: RunningApp) -> tuple[list[Any], list[Any]]:
    return list(app.context.keys.list()), list(app.context.accounts.list_keys())


def test_create_key_returns_the_key_resource(app: RunningApp) -> None:
    response = create(app)
    assert response.status_code == 201
    key = response.json()
    assert response.headers["Location"] == f"/api/keys/{key['keyId']}"
    assert response.headers["Content-Type"].startswith("application/json")
    assert key["tenantId"] == TENANT and key["applicationId"] == APP
    assert key["displayName"] == "Contoso production"
    assert re.fullmatch(r"[0-9A-F]{40}", key["thumbprint"])
    assert re.fullmatch(r"[0-9A-F]{64}", key["thumbprintSha256"])
    assert key["subject"] == "CN=Contoso production"
    assert key["keySize"] == 2048 and key["accountId"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", key["notAfter"])
    assert key["certificatePem"].startswith("-----BEGIN CERTIFICATE-----")
    assert "PRIVATE KEY" not in response.text
    cert = x509.load_pem_x509_certificate(key["certificatePem"].encode())
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 365
    assert app.http.get(app.api(f"/keys/{key['keyId']}")).json() == key


def test_stored_private_key_matches_the_certificate_and_is_private(app: RunningApp) -> None:
    key = create(app).json()
    assert key["custody"] == "local"
    assert certificates.signer_matches(app.context.keys.signer(key["keyId"]), key["certificatePem"])
    path = Path(app.context.settings.local_state_dir) / "keys" / f"{key['keyId']}.pem"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("size", [3072, 4096])
def test_optional_key_size_and_validity(app: RunningApp, size: int) -> None:
    key = create(app, {**VALID, "keySize": size, "validityDays": 730}).json()
    assert key["keySize"] == size
    cert = x509.load_pem_x509_certificate(key["certificatePem"].encode())
    assert cert.public_key().key_size == size  # type: ignore[union-attr]
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 730


def test_downloads_are_the_same_certificate_for_openssl(
    app: RunningApp, tmp_path: Path, openssl: str
) -> None:
    key = create(app, {**VALID, "displayName": 'Prod "EU"/west'}).json()
    moduli = set()
    for fmt, content_type, inform in (
        ("cer", "application/pkix-cert", "DER"),
        ("pem", "application/x-pem-file", "PEM"),
        ("crt", "application/x-pem-file", "PEM"),
    ):
        response = app.http.get(app.api(f"/keys/{key['keyId']}"), params={"format": fmt})
        assert response.status_code == 200
        assert response.headers["Content-Type"] == content_type
        assert response.headers["Content-Disposition"] == (
            f'attachment; filename="Prod-EU-west.{fmt}"'
        )
        path = tmp_path / f"download.{fmt}"
        path.write_bytes(response.content)
        assert openssl_cli.fingerprint(openssl, path, inform) == key["thumbprint"]
        moduli.add(openssl_cli.x509(openssl, path, inform, "-modulus"))
    assert len(moduli) == 1


BAD_BODIES = [
    ({"applicationId": APP, "displayName": "x"}, "tenantId"),
    ({**VALID, "tenantId": "not-a-guid"}, "tenantId"),
    ({**VALID, "tenantId": 42}, "tenantId"),
    ({**VALID, "applicationId": "1234"}, "applicationId"),
    ({"tenantId": TENANT, "applicationId": APP}, "displayName"),
    ({**VALID, "displayName": ""}, "displayName"),
    ({**VALID, "displayName": "x" * 65}, "displayName"),
    ({**VALID, "displayName": "bad\nname"}, "displayName"),
    ({**VALID, "displayName": "bad\u0000name"}, "displayName"),
    ({**VALID, "displayName": "   "}, "displayName"),
    ({**VALID, "displayName": ["x"]}, "displayName"),
    ({**VALID, "validityDays": 0}, "validityDays"),
    ({**VALID, "validityDays": 731}, "validityDays"),
    ({**VALID, "validityDays": "365"}, "validityDays"),
    ({**VALID, "validityDays": 36.5}, "validityDays"),
    ({**VALID, "validityDays": True}, "validityDays"),
    ({**VALID, "keySize": 1024}, "keySize"),
    ({**VALID, "keySize": "2048"}, "keySize"),
    # Integer fields take JSON integers only: these were a 500 (keySize) or slipped through.
    ({**VALID, "keySize": 2048.0}, "keySize"),
    ({**VALID, "keySize": True}, "keySize"),
    ({**VALID, "validityDays": 365.0}, "validityDays"),
    ({**VALID, "tenantId": TENANT + "\n"}, "tenantId"),
    ({**VALID, "applicationId": "{" + APP + "}"}, "applicationId"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BODIES)
def test_each_bad_field_is_named_and_nothing_is_written(
    app: RunningApp, body: dict[str, Any], field: str
) -> None:
    response = create(app, body)
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 400 and problem["type"].endswith("/validation")
    assert [e["field"] for e in problem["errors"]] == [field]
    assert problem["detail"].startswith(field)
    assert stored_state(app) == ([], [])


def test_every_bad_field_is_named_at_once(app: RunningApp) -> None:
    response = create(app, {"tenantId": "x", "displayName": "", "keySize": 1})
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"tenantId", "applicationId", "displayName", "keySize"}


@pytest.mark.parametrize(
    ("data", "content_type", "status", "kind"),
    [
        (b"{not json", "application/json", 400, "bad-request"),
        (b"[1, 2]", "application/json", 400, "bad-request"),
        (b"\xff\xfe", "application/json", 400, "bad-request"),
        (json.dumps(VALID).encode(), "text/plain", 415, "unsupported-media-type"),
        (json.dumps(VALID).encode(), None, 415, "unsupported-media-type"),
        (
            json.dumps({**VALID, "pad": "x" * 65536}).encode(),
            "application/json",
            413,
            "payload-too-large",
        ),
    ],
)
def test_malformed_requests_get_problem_details(
    app: RunningApp, data: bytes, content_type: str | None, status: int, kind: str
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = app.http.post(app.api("/keys"), data=data, headers=headers)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["type"].endswith("/" + kind)
    assert response.json()["status"] == status
    assert stored_state(app) == ([], [])


def test_json_with_charset_is_accepted(app: RunningApp) -> None:
    response = app.http.post(
        app.api("/keys"),
        data=json.dumps(VALID).encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 201


def test_unknown_fields_are_ignored(app: RunningApp) -> None:
    assert create(app, {**VALID, "colour": "blue"}).status_code == 201


def test_unknown_download_format_is_a_400_naming_format(app: RunningApp) -> None:
    key = create(app).json()
    response = app.http.get(app.api(f"/keys/{key['keyId']}"), params={"format": "pfx"})
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"field": "format", "message": "must be one of cer, pem, crt"}
    ]


@pytest.mark.parametrize("key_id", ["00000000-0000-0000-0000-000000000000", "nope", "..%2E"])
def test_unknown_or_malformed_key_is_404(app: RunningApp, key_id: str) -> None:
    response = app.http.get(app.api(f"/keys/{key_id}"))
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/problem+json"


def test_a_path_that_escapes_the_route_is_not_found(app: RunningApp) -> None:
    # The Functions host answers a URL that matches no route with a bare 404, as this does.
    assert app.http.get(app.api("/keys/..%2F..%2Fhost.json")).status_code == 404


def test_unsupported_methods_and_routes(app: RunningApp) -> None:
    key = create(app).json()
    refused = app.http.delete(app.api(f"/keys/{key['keyId']}"))  # not a method of the route
    assert refused.status_code == 405 and refused.headers["Allow"] == "GET"
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert app.http.get(app.api(f"/keys/{key['keyId']}")).status_code == 200
    listing = app.http.get(app.api("/keys"))  # the collection only takes POST
    assert listing.status_code == 405 and listing.headers["Allow"] == "POST"
    assert app.http.get(app.api("/nothing-here")).status_code == 404


def test_keys_survive_a_restart_of_the_host(start_app: Callable[..., RunningApp]) -> None:
    first = start_app()
    key = create(first).json()
    first.host.stop()
    second = start_app()
    assert second.http.get(second.api(f"/keys/{key['keyId']}")).json() == key


def test_a_name_of_many_utf8_bytes_makes_a_key(app: RunningApp) -> None:
    name = "\U0001f3fb Ünïcødé \u0103\u0136 " * 4  # under 64 characters, over 64 UTF-8 bytes
    response = create(app, {**VALID, "displayName": name[:64]})
    assert response.status_code == 201
    assert response.json()["displayName"] == name[:64]
