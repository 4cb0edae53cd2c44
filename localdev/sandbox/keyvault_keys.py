"""The Key Vault stand-in's keys API: RSA keys made, used to sign and deleted inside the vault.

Why: under `KEY_CUSTODY=vault-key` the app never holds a private key; it asks Key Vault to create
a non-exportable RSA key and to sign with it (`azure-keyvault-keys`: `KeyClient`,
`CryptographyClient`, `KeyVaultRSAPrivateKey`). This answers that REST API the way the SDK expects
(key bundles with the public JWK only, `sign` with PKCS#1 v1.5 or PSS, soft delete, paging), with
real keys, so assertions it signs verify at the sandbox's Entra. No answer and no record ever holds
a private member (`d`, `p`, `q`, `dp`, `dq`, `qi`): the private key object never leaves this
module.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from werkzeug.wrappers import Request, Response

from localdev.sandbox.keyvault_common import (
    BadParameter,
    VaultObject,
    attributes_json,
    attributes_of,
    check_name,
    deleted_json,
    json_body,
    page,
    tags_of,
)
from localdev.sandbox.wire import json_response, keyvault_error

KEY_TYPES = frozenset({"RSA", "RSA-HSM"})
KEY_SIZES = frozenset({2048, 3072, 4096})
DEFAULT_KEY_SIZE = 2048
PUBLIC_EXPONENT = 65537
# Key Vault's default for an RSA key created without `key_ops`.
DEFAULT_KEY_OPS = ("encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey")
KEY_OPS = frozenset({*DEFAULT_KEY_OPS, "import", "export"})
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
SIGNATURE_ALGORITHMS = frozenset(f"{family}{bits}" for family in ("RS", "PS") for bits in _HASHES)
# What a broken or hostile vault may answer to `sign` (the admin's sign fault): a signature cut
# to 10 bytes, or a well-formed signature made by another key of the same size.
SIGN_FAULTS = frozenset({"short", "other-key"})
_BASE64URL = re.compile(r"^[A-Za-z0-9_-]*={0,2}$")


class _Refused(Exception):
    """A Key Vault error answer other than `BadParameter`: status, code, message, inner code."""

    def __init__(self, status: int, code: str, message: str, inner_code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.inner_code = status, code, message, inner_code


@dataclass
class KeyVersion:
    version: str
    private_key: rsa.RSAPrivateKey  # never serialised: only `n` and `e` are ever answered
    kty: str
    key_ops: list[str]
    tags: dict[str, str] | None
    enabled: bool
    not_before: int | None
    expires: int | None
    created: int
    updated: int
    signs: int = 0

    @property
    def key_size(self) -> int:
        return self.private_key.key_size


class Key(VaultObject[KeyVersion]):
    """A key: its versions, and its deletion date once deleted."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(value: Any, name: str) -> bytes:
    if not isinstance(value, str) or not _BASE64URL.match(value):
        raise BadParameter(f"'{name}' must be a base64url string.")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as error:
        raise BadParameter(f"'{name}' must be a base64url string.") from error


def _int_bytes(number: int) -> bytes:
    return number.to_bytes((number.bit_length() + 7) // 8, "big")


def _padding_for(alg: str, digest_size: int) -> padding.AsymmetricPadding:
    if alg.startswith("PS"):
        # Key Vault's PSS salt is as long as the digest, as azure-keyvault-keys' verifier expects.
        hash_algorithm = _HASHES[alg[2:]]()
        return padding.PSS(mgf=padding.MGF1(hash_algorithm), salt_length=digest_size)
    return padding.PKCS1v15()


class KeyVaultKeys:
    """The vault's keys, in memory, behind the routes `/keys…` and `/deletedkeys…`.

    `premium` models the vault's SKU: a standard vault (False) refuses `RSA-HSM`.
    """

    def __init__(self, url: str, lock: threading.RLock) -> None:
        self.url = url
        self.premium = True
        self.sign_fault: str | None = None
        self._lock = lock
        self._keys: dict[str, Key] = {}
        self._strangers: dict[int, rsa.RSAPrivateKey] = {}  # by size, for the "other-key" fault

    # --- what tests and the admin API read ------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """`keys` and `deletedKeys`: public facts and sign counts, never key material."""
        with self._lock:
            ordered = sorted(self._keys.values(), key=lambda k: k.name.lower())
            return {
                "keys": [self._summary(k) for k in ordered if k.deleted_date is None],
                "deletedKeys": [self._summary(k) for k in ordered if k.deleted_date is not None],
                "premium": self.premium,
                "signFault": self.sign_fault,
            }

    def reset(self) -> None:
        with self._lock:
            self._keys.clear()
            self.premium = True
            self.sign_fault = None

    def set_sign_fault(self, mode: str | None) -> None:
        """From now on every `sign` answers a wrong signature (`SIGN_FAULTS`), or, with None,
        a right one again."""
        if mode is not None and mode not in SIGN_FAULTS:
            raise ValueError(f"mode must be one of {sorted(SIGN_FAULTS)} or null")
        with self._lock:
            self.sign_fault = mode

    # --- routing --------------------------------------------------------------------------------
    def handle(self, request: Request, parts: list[str]) -> Response:
        """Answer one authorised request whose path starts with `keys` or `deletedkeys`."""
        try:
            if request.method == "POST" and len(parts) == 3 and parts[::2] == ["keys", "create"]:
                return self._create(request, parts[1])  # takes the lock itself
            with self._lock:
                return self._route(request, parts)
        except BadParameter as error:
            return keyvault_error(400, "BadParameter", error.message)
        except _Refused as error:
            return keyvault_error(
                error.status, error.code, error.message, inner_code=error.inner_code
            )

    def _route(self, request: Request, parts: list[str]) -> Response:
        method = request.method
        collection, rest = parts[0], parts[1:]
        if rest and rest[-1] == "" and len(rest) <= 2:
            rest = rest[:-1]  # `/keys/{name}/` is the latest version, as `/keys/{name}`
        if rest:
            check_name(rest[0])
        if collection == "keys":
            if not rest and method == "GET":
                return self._list(request, deleted=False)
            if len(rest) == 1 and method == "DELETE":
                return self._delete(rest[0])
            if len(rest) == 2 and rest[1].lower() == "versions" and method == "GET":
                return self._list_versions(request, rest[0])
            if len(rest) in (1, 2) and method == "GET":
                return self._get(rest[0], rest[1] if len(rest) == 2 else "")
            if len(rest) in (1, 2) and method == "PATCH":
                return self._update(request, rest[0], rest[1] if len(rest) == 2 else "")
            # `/keys/{name}/{version}/sign`; an empty or absent version is the latest one.
            if len(rest) in (2, 3) and method == "POST" and rest[-1] in ("sign", "verify"):
                version = rest[1] if len(rest) == 3 else ""
                if rest[-1] == "sign":
                    return self._sign(request, rest[0], version)
                return self._verify(request, rest[0], version)
        elif collection == "deletedkeys":
            if not rest and method == "GET":
                return self._list(request, deleted=True)
            if len(rest) == 1 and method == "GET":
                return json_response(self._deleted_bundle(self._deleted(rest[0])))
            if len(rest) == 1 and method == "DELETE":
                del self._keys[self._deleted(rest[0]).name.lower()]
                return Response(status=204)
            if len(rest) == 2 and rest[1] == "recover" and method == "POST":
                key = self._deleted(rest[0])
                key.deleted_date = None
                return json_response(self._bundle(key, key.latest))
        return keyvault_error(404, "NotFound", f"No operation {method} {request.path}.")

    # --- operations -----------------------------------------------------------------------------
    def _create(self, request: Request, name: str) -> Response:
        check_name(name)
        body = json_body(request)
        kty = body.get("kty")
        if not isinstance(kty, str) or kty not in KEY_TYPES:
            raise BadParameter(
                f"The sandbox's vault makes RSA keys only: kty must be one of {sorted(KEY_TYPES)}."
            )
        if kty == "RSA-HSM" and not self.premium:
            raise BadParameter("RSA-HSM keys need a Premium vault; this vault is Standard.")
        raw_attributes = body.get("attributes") or {}
        exportable = isinstance(raw_attributes, dict) and raw_attributes.get("exportable")
        if exportable is not None and exportable is not False:
            if body.get("release_policy") is None:
                raise BadParameter("AKV.SKR.1004: Exportable keys must have release policy.")
            raise BadParameter("The sandbox's vault does not model exportable keys.")
        if body.get("release_policy") is not None:
            raise BadParameter("Non-exportable keys must not have release policy.")
        size = body.get("key_size", DEFAULT_KEY_SIZE)
        if size is None:
            size = DEFAULT_KEY_SIZE
        if not isinstance(size, int) or isinstance(size, bool) or size not in KEY_SIZES:
            raise BadParameter(f"key_size must be one of {sorted(KEY_SIZES)} for RSA keys.")
        if body.get("public_exponent") not in (None, PUBLIC_EXPONENT):
            raise BadParameter(f"public_exponent must be {PUBLIC_EXPONENT}.")
        key_ops = self._key_ops_of(body) or list(DEFAULT_KEY_OPS)
        attributes = attributes_of(body)
        tags = tags_of(body)
        # Generating the key takes long enough that other vault requests should not wait on it.
        private_key = rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=size)
        with self._lock:
            existing = self._keys.get(name.lower())
            if existing is not None and existing.deleted_date is not None:
                raise _Refused(
                    409,
                    "Conflict",
                    f"Key {name} is currently in a deleted but recoverable state, and its name "
                    "cannot be reused; in this state, the key can only be recovered or purged.",
                    "ObjectIsDeletedButRecoverable",
                )
            now = int(time.time())
            version = KeyVersion(
                version=uuid.uuid4().hex,
                private_key=private_key,
                kty=kty,
                key_ops=key_ops,
                tags=tags,
                enabled=attributes.get("enabled", True),
                not_before=attributes.get("nbf"),
                expires=attributes.get("exp"),
                created=now,
                updated=now,
            )
            key = existing or self._keys.setdefault(name.lower(), Key(name=name))
            key.versions.append(version)
            return json_response(self._bundle(key, version))

    def _get(self, name: str, version_id: str) -> Response:
        key, version = self._live_version(name, version_id)
        return json_response(self._bundle(key, version))

    def _update(self, request: Request, name: str, version_id: str) -> Response:
        key, version = self._live_version(name, version_id)
        body = json_body(request)
        if body.get("release_policy") is not None:
            raise BadParameter("Non-exportable keys must not have release policy.")
        attributes = attributes_of(body)
        key_ops = self._key_ops_of(body)
        if key_ops is not None:
            version.key_ops = key_ops
        if "tags" in body:
            version.tags = tags_of(body)
        version.enabled = attributes.get("enabled", version.enabled)
        version.not_before = attributes.get("nbf", version.not_before)
        version.expires = attributes.get("exp", version.expires)
        version.updated = int(time.time())
        return json_response(self._bundle(key, version))

    def _sign(self, request: Request, name: str, version_id: str) -> Response:
        key, version = self._live_version(name, version_id)
        alg, digest = self._operation_of(json_body(request), "value")
        self._check_usable(version, "sign")
        signer = version.private_key
        if self.sign_fault == "other-key":
            signer = self._stranger(version.key_size)
        signature = signer.sign(
            digest, _padding_for(alg, len(digest)), utils.Prehashed(_HASHES[alg[2:]]())
        )
        if self.sign_fault == "short":
            signature = signature[:10]
        version.signs += 1
        return json_response({"kid": self._kid(key, version), "value": _b64url(signature)})

    def _stranger(self, size: int) -> rsa.RSAPrivateKey:
        """A key of this size that is no key of the vault's (made once, kept)."""
        stranger = self._strangers.get(size)
        if stranger is None:
            stranger = rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=size)
            self._strangers[size] = stranger
        return stranger

    def _verify(self, request: Request, name: str, version_id: str) -> Response:
        _, version = self._live_version(name, version_id)
        body = json_body(request)
        alg, digest = self._operation_of(body, "digest")
        signature = _b64url_decode(body.get("value"), "value")
        self._check_usable(version, "verify")
        try:
            version.private_key.public_key().verify(
                signature,
                digest,
                _padding_for(alg, len(digest)),
                utils.Prehashed(_HASHES[alg[2:]]()),
            )
        except InvalidSignature:
            return json_response({"value": False})
        return json_response({"value": True})

    def _delete(self, name: str) -> Response:
        key = self._live(name)
        key.deleted_date = int(time.time())
        return json_response(self._deleted_bundle(key))

    def _list(self, request: Request, *, deleted: bool) -> Response:
        keys = sorted(
            (k for k in self._keys.values() if (k.deleted_date is not None) == deleted),
            key=lambda k: k.name.lower(),
        )
        if deleted:
            items = [self._deleted_bundle(k, item=True) for k in keys]
        else:
            items = [self._item(k, k.latest, versioned=False) for k in keys]
        return page(request, self.url, "deletedkeys" if deleted else "keys", items)

    def _list_versions(self, request: Request, name: str) -> Response:
        key = self._live(name)
        items = [self._item(key, v, versioned=True) for v in key.versions]
        return page(request, self.url, f"keys/{key.name}/versions", items)

    # --- checks ---------------------------------------------------------------------------------
    def _live(self, name: str) -> Key:
        key = self._keys.get(name.lower())
        if key is None or key.deleted_date is not None:
            raise self._not_found(name)
        return key

    def _live_version(self, name: str, version_id: str) -> tuple[Key, KeyVersion]:
        key = self._live(name)
        version = key.version(version_id)
        if version is None:
            raise self._not_found(f"{name}/{version_id}")
        return key, version

    def _deleted(self, name: str) -> Key:
        key = self._keys.get(name.lower())
        if key is None or key.deleted_date is None:
            raise _Refused(404, "KeyNotFound", f"Deleted Key not found: {name}")
        return key

    @staticmethod
    def _not_found(name: str) -> _Refused:
        return _Refused(
            404,
            "KeyNotFound",
            f"A key with (name/id) {name} was not found in this key vault. If you recently "
            "deleted this key you may be able to recover it using the correct recovery command. "
            "For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182",
        )

    @staticmethod
    def _key_ops_of(body: dict[str, Any]) -> list[str] | None:
        key_ops = body.get("key_ops")
        if key_ops is None:
            return None
        if not isinstance(key_ops, list) or not all(
            isinstance(op, str) and op in KEY_OPS for op in key_ops
        ):
            raise BadParameter(f"key_ops must be a list of {sorted(KEY_OPS)}.")
        return list(dict.fromkeys(key_ops))

    @staticmethod
    def _operation_of(body: dict[str, Any], digest_field: str) -> tuple[str, bytes]:
        alg = body.get("alg")
        if not isinstance(alg, str) or alg not in SIGNATURE_ALGORITHMS:
            raise BadParameter(
                f"Invalid algorithm {alg!r} for an RSA key: one of {sorted(SIGNATURE_ALGORITHMS)}."
            )
        digest = _b64url_decode(body.get(digest_field), digest_field)
        expected = _HASHES[alg[2:]]().digest_size
        if len(digest) != expected:
            raise BadParameter(
                f"The digest is {len(digest)} bytes long; {alg} takes a {expected}-byte digest."
            )
        return alg, digest

    @staticmethod
    def _check_usable(version: KeyVersion, operation: str) -> None:
        if operation not in version.key_ops:
            raise _Refused(
                403,
                "Forbidden",
                f"Operation {operation} is not permitted on this key.",
                "KeyOperationForbidden",
            )
        now = int(time.time())
        if not version.enabled:
            raise _Refused(
                403,
                "Forbidden",
                f"Operation {operation} is not allowed on a disabled key.",
                "KeyDisabled",
            )
        # Key Vault still verifies with an expired key; it refuses to sign with one.
        if operation == "sign" and version.expires is not None and now >= version.expires:
            raise _Refused(
                403, "Forbidden", "Operation sign is not allowed on an expired key.", "KeyExpired"
            )
        if operation == "sign" and version.not_before is not None and now < version.not_before:
            raise _Refused(
                403,
                "Forbidden",
                "Operation sign is not allowed on a key that is not yet valid.",
                "KeyNotYetValid",
            )

    # --- shapes ---------------------------------------------------------------------------------
    def _kid(self, key: Key, version: KeyVersion | None) -> str:
        return f"{self.url}/keys/{key.name}" + (f"/{version.version}" if version else "")

    @staticmethod
    def _attributes(version: KeyVersion) -> dict[str, Any]:
        return {**attributes_json(version), "exportable": False}

    def _jwk(self, key: Key, version: KeyVersion) -> dict[str, Any]:
        """The public JWK: exactly `kid`, `kty`, `key_ops`, `n`, `e`."""
        numbers = version.private_key.public_key().public_numbers()
        return {
            "kid": self._kid(key, version),
            "kty": version.kty,
            "key_ops": list(version.key_ops),
            "n": _b64url(_int_bytes(numbers.n)),
            "e": _b64url(_int_bytes(numbers.e)),
        }

    def _bundle(self, key: Key, version: KeyVersion) -> dict[str, Any]:
        bundle: dict[str, Any] = {
            "key": self._jwk(key, version),
            "attributes": self._attributes(version),
        }
        if version.tags is not None:
            bundle["tags"] = dict(version.tags)
        return bundle

    def _item(self, key: Key, version: KeyVersion, *, versioned: bool) -> dict[str, Any]:
        item: dict[str, Any] = {
            "kid": self._kid(key, version if versioned else None),
            "attributes": self._attributes(version),
        }
        if version.tags is not None:
            item["tags"] = dict(version.tags)
        return item

    def _deleted_bundle(self, key: Key, *, item: bool = False) -> dict[str, Any]:
        if item:
            bundle = self._item(key, key.latest, versioned=False)
        else:
            bundle = self._bundle(key, key.latest)
        bundle.update(deleted_json(self.url, "deletedkeys", key))
        return bundle

    def _summary(self, key: Key) -> dict[str, Any]:
        latest = key.latest
        summary: dict[str, Any] = {
            "name": key.name,
            "kid": self._kid(key, latest),
            "kty": latest.kty,
            "hsm": latest.kty.endswith("-HSM"),
            "keySize": latest.key_size,
            "keyOps": list(latest.key_ops),
            "tags": dict(latest.tags) if latest.tags is not None else None,
            "attributes": self._attributes(latest),
            "versions": len(key.versions),
            "signs": sum(v.signs for v in key.versions),
        }
        if key.deleted_date is not None:
            summary["deletedDate"] = key.deleted_date
        return summary
