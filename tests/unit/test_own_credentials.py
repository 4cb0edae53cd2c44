"""The pure parts of the app's own writes (the proof, the words) and the answers no real Graph
gives but the app must still judge: through the real TenantClient against a scripted server."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.adapters.http.outbound import make_session
from shared.adapters.keystore.signing_key import SigningOnlyKey
from shared.adapters.tenant.assertion import sign_assertion
from shared.adapters.tenant.client import TenantClient
from shared.adapters.tenant.graph_write import GraphWrite
from shared.adapters.tenant.own_credentials import (
    PROOF_AUDIENCE,
    add_certificate,
    application_object_id,
    proof_of_possession,
    remove_certificate,
)
from shared.core import certificates
from shared.support.timefmt import utc_now
from tests.unit.scripted_server import Answer, ScriptedServer, scripted_server

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PAIR = certificates.generate("Unit", validity_days=30, key_size=2048, now=utc_now())
THUMBPRINT = "0123456789ABCDEF0123456789ABCDEF01234567"
OBJECT_ID = "7d5c02d2-6fc8-407f-b4b7-ae4bd10e15c1"


def x5t(thumbprint: str) -> str:
    return base64.urlsafe_b64encode(bytes.fromhex(thumbprint)).rstrip(b"=").decode()


# --- the proof ---------------------------------------------------------------------------------
def test_the_proof_is_what_graph_verifies() -> None:
    proof = proof_of_possession(KEY, object_id=OBJECT_ID, thumbprint=THUMBPRINT, now=1_800_000_000)
    header = jwt.get_unverified_header(proof)
    assert (header["alg"], header["x5t"]) == ("RS256", x5t(THUMBPRINT))
    claims = jwt.decode(
        proof,
        KEY.public_key(),
        algorithms=["RS256"],
        audience=PROOF_AUDIENCE,
        issuer=OBJECT_ID,
        options={"verify_exp": False, "verify_nbf": False},
    )
    assert (claims["nbf"], claims["exp"]) == (1_800_000_000, 1_800_000_600)
    assert uuid.UUID(claims["jti"])
    again = proof_of_possession(KEY, object_id=OBJECT_ID, thumbprint=THUMBPRINT)
    assert jwt.decode(again, options={"verify_signature": False})["jti"] != claims["jti"]


def test_the_proof_needs_only_sign_from_the_key() -> None:
    calls: list[bytes] = []

    def sign(data: bytes, padding: Any, algorithm: Any) -> bytes:
        calls.append(data)
        return KEY.sign(data, padding, algorithm)

    sign_only = SigningOnlyKey(sign, KEY.public_key())  # as Key Vault's signer is
    proof = proof_of_possession(sign_only, object_id=OBJECT_ID, thumbprint=THUMBPRINT)
    assert len(calls) == 1
    jwt.decode(proof, KEY.public_key(), algorithms=["RS256"], audience=PROOF_AUDIENCE)


def test_the_client_assertion_is_unchanged_by_the_shared_signer() -> None:
    assertion = sign_assertion(
        KEY, client_id="app", audience="https://login/t/token", thumbprint=THUMBPRINT, now=100
    )
    assert jwt.get_unverified_header(assertion)["x5t"] == x5t(THUMBPRINT)
    claims = jwt.decode(assertion, options={"verify_signature": False})
    assert {k: v for k, v in claims.items() if k != "jti"} == {
        "aud": "https://login/t/token",
        "iss": "app",
        "sub": "app",
        "nbf": 100,
        "iat": 100,
        "exp": 700,
    }


# --- the words ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("write", "words"),
    [
        (
            GraphWrite("done", 200, key_credential_id="k"),
            "Microsoft Graph accepted addKey (keyId k).",
        ),
        (
            GraphWrite("refused", 400, "CredentialInvalidLifetimeAsPerAppPolicy", "Too long."),
            "Microsoft Graph refused addKey (HTTP 400 CredentialInvalidLifetimeAsPerAppPolicy): "
            "Too long.",
        ),
        (
            GraphWrite("transient", 503, "serviceNotAvailable", operation="removeKey"),
            "Microsoft Graph could not be reached for removeKey (HTTP 503 serviceNotAvailable), "
            "to be tried again.",
        ),
        (
            GraphWrite("transient", message="ConnectTimeout"),
            "Microsoft Graph could not be reached for addKey (no answer), to be tried again: "
            "ConnectTimeout.",
        ),
        (
            GraphWrite("refused", message="the object id is not a GUID"),
            "addKey could not be done: the object id is not a GUID.",
        ),
    ],
    ids=["done", "refused", "transient", "no-answer", "judged-here"],
)
def test_words(write: GraphWrite, words: str) -> None:
    assert write.words() == words


# --- answers Graph is not supposed to give -------------------------------------------------------
@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    yield from scripted_server()  # `answer()` gives each test its own script and record


@pytest.fixture
def client() -> TenantClient:
    return TenantClient(make_session(retries=0))


def graph_json(status: int, body: Any) -> Answer:
    return Answer(status=status, body=json.dumps(body).encode())


def add(client: TenantClient, server: ScriptedServer) -> GraphWrite:
    return add_certificate(
        client,
        server.url,
        "token",
        object_id=OBJECT_ID,
        certificate_pem=PAIR.info.certificate_pem,
        signer=KEY,
        signer_thumbprint=THUMBPRINT,
    )


def remove(client: TenantClient, server: ScriptedServer, thumbprint: str) -> GraphWrite:
    return remove_certificate(
        client,
        server.url,
        "token",
        object_id=OBJECT_ID,
        thumbprint=thumbprint,
        signer=KEY,
        signer_thumbprint=THUMBPRINT,
    )


@pytest.mark.parametrize("body", [[1, 2], "text", {"keyId": "not-a-guid"}, {}])
def test_add_key_answered_200_without_a_usable_key_id_is_done_without_one(
    client: TenantClient, server: ScriptedServer, body: Any
) -> None:
    server.answer(graph_json(200, body))
    write = add(client, server)
    assert (write.outcome, write.key_credential_id) == ("done", None)


def test_a_400_whose_listing_has_no_key_credentials_is_graphs_refusal(
    client: TenantClient, server: ScriptedServer
) -> None:
    refusal = {"error": {"code": "Request_BadRequest", "message": "No."}}
    server.answer(graph_json(400, refusal), graph_json(200, {"keyCredentials": "nope"}))
    write = add(client, server)
    assert (write.outcome, write.status, write.code) == ("refused", 400, "Request_BadRequest")
    assert [m for m, _, _ in server.received] == ["POST", "GET"]


@pytest.mark.parametrize(
    "error",
    [
        {"code": 7, "message": ["not", "text"]},
        {"code": {"x": 1}, "message": 12},
        "not an object",
    ],
    ids=["list-message", "number-message", "string-error"],
)
def test_an_error_not_in_graphs_shape_is_refused_not_raised(
    client: TenantClient, server: ScriptedServer, error: Any
) -> None:
    server.answer(graph_json(403, {"error": error}))
    write = add(client, server)
    assert write.outcome == "refused"
    assert write.code is None
    assert write.words().startswith(("Microsoft Graph refused addKey", "addKey could not be done"))


def test_graphs_words_never_carry_a_jwt(client: TenantClient, server: ScriptedServer) -> None:
    proof_like = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJl"
    server.answer(
        graph_json(403, {"error": {"code": "Denied", "message": f"bad proof {proof_like}\nline 2"}})
    )
    write = add(client, server)
    assert write.message == "bad proof [removed]"
    assert "eyJ" not in write.words()


def test_remove_key_trusts_no_listing_it_cannot_read(
    client: TenantClient, server: ScriptedServer
) -> None:
    other = "F" * 40
    listing_without_key_id = {
        "keyCredentials": [
            "junk",
            {"customKeyIdentifier": base64.b64encode(bytes.fromhex(other)).decode(), "keyId": 5},
        ]
    }
    for listing, expected in (
        ([1], "the answer lists no keyCredentials"),
        ({"value": []}, "the answer lists no keyCredentials"),
        (listing_without_key_id, "without a keyId that is a GUID"),
    ):
        server.answer(graph_json(200, listing))
        write = remove(client, server, other)
        assert write.outcome == "refused", listing
        assert expected in write.words()
        assert [m for m, _, _ in server.received] == ["GET"]  # nothing was removed


def test_remove_key_finds_a_hex_identifier_and_takes_a_404_as_done(
    client: TenantClient, server: ScriptedServer
) -> None:
    other = "ab" * 20
    key_id = str(uuid.uuid4())
    listing = {"keyCredentials": [{"customKeyIdentifier": other.upper(), "keyId": key_id}]}
    server.answer(graph_json(200, listing), graph_json(404, {"error": {"code": "NotFound"}}))
    write = remove(client, server, other)
    assert (write.outcome, write.status, write.key_credential_id) == ("done", 404, key_id)
    assert server.received[1][:2] == ("POST", f"/v1.0/applications/{OBJECT_ID}/removeKey")


def test_the_object_id_must_be_a_guid(client: TenantClient, server: ScriptedServer) -> None:
    for body in ({"id": "not-a-guid"}, {"id": 12}, [OBJECT_ID], {}):
        server.answer(graph_json(200, body))
        answer = application_object_id(client, server.url, "token", str(uuid.uuid4()))
        assert isinstance(answer, GraphWrite) and answer.outcome == "refused", body
    server.answer(graph_json(200, {"id": OBJECT_ID.upper()}))
    assert application_object_id(client, server.url, "token", str(uuid.uuid4())) == OBJECT_ID


def test_ids_that_are_not_guids_never_reach_a_url(
    client: TenantClient, server: ScriptedServer
) -> None:
    server.answer(graph_json(200, {}))
    bad_object = add_certificate(
        client,
        server.url,
        "token",
        object_id="../../me",
        certificate_pem=PAIR.info.certificate_pem,
        signer=KEY,
        signer_thumbprint=THUMBPRINT,
    )
    bad_app = application_object_id(client, server.url, "token", "x') or 1 eq 1")
    bad_thumbprint = remove(client, server, "not-hex")
    bad_certificate = add_certificate(
        client,
        server.url,
        "token",
        object_id=OBJECT_ID,
        certificate_pem="-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        signer=KEY,
        signer_thumbprint=THUMBPRINT,
    )
    for write in (bad_object, bad_app, bad_thumbprint, bad_certificate):
        assert isinstance(write, GraphWrite) and write.outcome == "refused"
        assert write.status is None
    assert server.received == []


def test_graph_post_answers_a_204_as_ok_with_an_empty_body(
    client: TenantClient, server: ScriptedServer
) -> None:
    server.answer(Answer(status=204, body=b""))
    answer = client.graph_post(f"{server.url}/v1.0/x", "token", {"a": 1})
    assert (answer.ok, answer.status, answer.body) == (True, 204, {})
    unreachable = client.graph_post("http://127.0.0.1:9/v1.0/x", "token", {})
    assert (unreachable.transient, unreachable.status) == (True, None)
