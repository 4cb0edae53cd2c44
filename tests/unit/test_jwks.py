"""The issuer's signing keys: cached, refreshed on an unknown kid at most once per 30 s, and kept
when a refresh fails. The issuer is a real HTTP server whose answers the test sets; the clock is
injected so an hour's TTL takes no time."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from shared.adapters.identity.entra import EntraAuthenticator
from shared.adapters.identity.jwks import JWKS_MIN_INTERVAL, JWKS_TTL, JwksCache
from shared.core.errors import DependencyUnavailable, Unauthorized
from shared.core.settings import AuthSettings

AUDIENCE = "api://portal-backend"
ISSUER = "https://issuer.example/{tid}/v2.0"


@dataclass
class Issuer:
    """Signing keys by kid, and what the JWKS endpoint answers (the published keys by default)."""

    keys: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    status: int = 200
    body: bytes | None = None  # overrides the published keys when set
    requests: int = 0

    def add_key(self) -> str:
        kid = uuid.uuid4().hex
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return kid

    def document(self) -> bytes:
        if self.body is not None:
            return self.body
        keys = []
        for kid, key in self.keys.items():
            jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
            keys.append({"kty": "RSA", "use": "sig", "kid": kid, "n": jwk["n"], "e": jwk["e"]})
        return json.dumps({"keys": keys}).encode()

    def token(self, kid: str, tid: str | None = None, signer: str | None = None) -> str:
        tid = tid or str(uuid.uuid4())
        now = int(time.time())
        claims = {
            "iss": ISSUER.replace("{tid}", tid),
            "tid": tid,
            "aud": AUDIENCE,
            "nbf": now,
            "exp": now + 3600,
        }
        key = self.keys[signer or kid]
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def issuer() -> Iterator[tuple[Issuer, str]]:
    state = Issuer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests += 1
            body = state.document() if state.status == 200 else b'{"error": "down"}'
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}/keys"
    server.shutdown()
    server.server_close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def authenticator(uri: str, clock: Clock) -> EntraAuthenticator:
    settings = AuthSettings("entra", (AUDIENCE,), ISSUER, uri, "tid")
    return EntraAuthenticator(settings, JwksCache(uri, clock=clock))


def bearer(token: str) -> str:
    return f"Bearer {token}"


def unknown_kid_token(state: Issuer) -> str:
    """A token signed by a key of the issuer's but naming a kid nobody publishes."""
    kid = next(iter(state.keys))
    now = int(time.time())
    claims = {"iss": "x", "tid": str(uuid.uuid4()), "aud": AUDIENCE, "exp": now + 600}
    return jwt.encode(claims, state.keys[kid], algorithm="RS256", headers={"kid": uuid.uuid4().hex})


def test_keys_are_fetched_once_and_cached(issuer: tuple[Issuer, str]) -> None:
    state, uri = issuer
    kid = state.add_key()
    clock = Clock()
    auth = authenticator(uri, clock)
    tid = str(uuid.uuid4())
    for _ in range(20):
        assert auth.owner(bearer(state.token(kid, tid))) == tid
        clock.now += 60  # 20 minutes in all, well inside the TTL
    assert state.requests == 1


def test_a_newly_published_key_is_accepted_within_a_minute(issuer: tuple[Issuer, str]) -> None:
    state, uri = issuer
    old = state.add_key()
    clock = Clock()
    auth = authenticator(uri, clock)
    auth.owner(bearer(state.token(old)))
    new = state.add_key()  # the issuer rolls over to a new key
    clock.now += JWKS_MIN_INTERVAL + 1
    tid = str(uuid.uuid4())
    assert auth.owner(bearer(state.token(new, tid))) == tid
    assert state.requests == 2
    assert auth.owner(bearer(state.token(old, tid))) == tid  # the old key still works too


def test_unknown_kids_cause_at_most_one_fetch_per_30_seconds(issuer: tuple[Issuer, str]) -> None:
    state, uri = issuer
    state.add_key()
    clock = Clock()
    auth = authenticator(uri, clock)
    for _ in range(100):  # 100 forged kids in 29.7 s
        with pytest.raises(Unauthorized, match="unknown key"):
            auth.owner(bearer(unknown_kid_token(state)))
        clock.now += 0.297
    assert state.requests == 1
    clock.now += 1
    with pytest.raises(Unauthorized, match="unknown key"):
        auth.owner(bearer(unknown_kid_token(state)))
    assert state.requests == 2


def test_an_empty_key_set_keeps_the_limit_and_is_a_503(issuer: tuple[Issuer, str]) -> None:
    state, uri = issuer
    state.body = b'{"keys": []}'
    clock = Clock()
    auth = authenticator(uri, clock)
    kid = state.add_key()
    for _ in range(10):
        with pytest.raises(DependencyUnavailable) as down:
            auth.owner(bearer(state.token(kid)))
        assert 1 <= down.value.retry_after <= JWKS_MIN_INTERVAL
        clock.now += 1
    assert state.requests == 1


def test_an_outage_after_the_ttl_keeps_the_known_keys(issuer: tuple[Issuer, str]) -> None:
    state, uri = issuer
    kid = state.add_key()
    clock = Clock()
    auth = authenticator(uri, clock)
    auth.owner(bearer(state.token(kid)))
    state.status = 503
    clock.now += JWKS_TTL + 1
    tid = str(uuid.uuid4())
    for _ in range(50):
        assert auth.owner(bearer(state.token(kid, tid))) == tid
        clock.now += 0.5
    # One refresh was tried, once (no retries inside it), and then it backs off.
    assert state.requests == 2
    with pytest.raises(Unauthorized, match="unknown key"):
        auth.owner(bearer(unknown_kid_token(state)))
    assert state.requests == 2


def test_failed_fetches_back_off(issuer: tuple[Issuer, str]) -> None:
    state, uri = issuer
    state.status = 500
    kid = state.add_key()
    clock = Clock()
    auth = authenticator(uri, clock)
    attempts = []
    for _ in range(400):  # 400 s of callers, one a second
        with pytest.raises(DependencyUnavailable):
            auth.owner(bearer(state.token(kid)))
        attempts.append(state.requests)
        clock.now += 1
    first_try_at = [attempts.index(n) for n in sorted(set(attempts))]
    assert first_try_at == [0, 30, 90, 210]  # 30, 60, 120 s apart: doubling after each failure
    state.status = 200
    clock.now += 300
    tid = str(uuid.uuid4())
    assert auth.owner(bearer(state.token(kid, tid))) == tid


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'"keys"',
        b"null",
        b'{"keys": "none"}',
        b'{"keys": [1, 2]}',
        b'{"keys": [{"kty": "RSA", "kid": "toy", "n": "AQAB", "e": "AQAB"}]}',
        b'{"keys": [{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}]}',
        b"not json",
        b"\xff\xfe",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"keys": [' + b"9" * 5000 + b"]}",
    ],
    ids=[
        "array", "string", "null", "keys-not-list", "entries-not-objects", "toy-key",
        "hmac-key", "not-json", "not-utf8", "deep-nesting", "huge-integer",
    ],
)  # fmt: skip
def test_a_garbage_key_set_is_a_failed_fetch_not_a_500(
    issuer: tuple[Issuer, str], body: bytes
) -> None:
    state, uri = issuer
    kid = state.add_key()
    clock = Clock()
    auth = authenticator(uri, clock)
    state.body = body
    with pytest.raises(DependencyUnavailable):
        auth.owner(bearer(state.token(kid)))
    # With good keys known, the same garbage after the TTL changes nothing.
    state.body = None
    clock.now += JWKS_MIN_INTERVAL * 10
    tid = str(uuid.uuid4())
    assert auth.owner(bearer(state.token(kid, tid))) == tid
    state.body = body
    clock.now += JWKS_TTL + 1
    assert auth.owner(bearer(state.token(kid, tid))) == tid


def test_a_wrong_signature_under_a_known_kid_is_refused(issuer: tuple[Issuer, str]) -> None:
    state, uri = issuer
    kid, other = state.add_key(), state.add_key()
    auth = authenticator(uri, Clock())
    with pytest.raises(Unauthorized, match="signature"):
        auth.owner(bearer(state.token(kid, signer=other)))
