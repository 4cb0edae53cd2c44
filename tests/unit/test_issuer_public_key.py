"""The issuer's JWKS entries: `n` and `e` as RFC 7518 writes them, and the `kid` as RFC 7638's
thumbprint, checked against the RFC's own example, so every instance names a key alike."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives.asymmetric import rsa

from shared.adapters.issuer.public_key import public_members

# RFC 7638 §3.1: the example key and its thumbprint.
N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
    "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2Qvzq"
    "Y368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0"
    "fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
)
KID = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def _uint(text: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


def test_the_rfc_7638_example_key_gets_the_rfc_s_thumbprint_and_members() -> None:
    key = rsa.RSAPublicNumbers(_uint("AQAB"), _uint(N)).public_key()
    assert public_members(key) == (KID, N, "AQAB")


def test_a_fresh_key_has_no_padding_and_no_leading_zero_octet() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    kid, n, e = public_members(key)
    assert "=" not in kid + n + e and len(kid) == 43
    assert len(base64.urlsafe_b64decode(n + "==")) == 256 and e == "AQAB"
