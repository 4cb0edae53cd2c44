"""An RSA public key as a JWK's public members: `n`, `e` (base64url, RFC 7518 §6.3.1) and the
`kid`, its RFC 7638 thumbprint (stable for the key, so every instance names it alike)."""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography.hazmat.primitives.asymmetric import rsa


def _b64url_uint(value: int) -> str:
    data = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def public_members(key: rsa.RSAPublicKey) -> tuple[str, str, str]:
    """(kid, n, e) of the key."""
    numbers = key.public_numbers()
    n, e = _b64url_uint(numbers.n), _b64url_uint(numbers.e)
    canonical = json.dumps({"e": e, "kty": "RSA", "n": n}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii"), n, e
