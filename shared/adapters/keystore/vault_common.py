"""What both Key Vault custodies share: client options, the challenge rule, tags, and how the
vault's failures become the app's errors."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlparse

from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError

from shared.adapters.http.azure_pipeline import client_options
from shared.adapters.keystore.base import KeyLabels, PrivateKeyMissing, StoredKey, check_key_id
from shared.core.clouds import is_loopback_host
from shared.core.errors import AppError, ConfigurationError, DependencyUnavailable
from shared.support import telemetry as t
from shared.support.guid import is_canonical_guid

PREFIX = "m365link-"  # secret and key names: m365link-<keyId>
# Key Vault answers a key, a secret or a page of 25 listed items in a few kB: a larger answer is
# not read whole, it is an unavailable vault.
MAX_ANSWER_BYTES = 1024 * 1024
CLIENT_OPTIONS: dict[str, Any] = client_options(max_answer_bytes=MAX_ANSWER_BYTES)


@contextmanager
def sign_timed(custody: str) -> Iterator[None]:
    """Key Vault's part of one signature in the metrics (ms, by custody), failed or not:
    `vault-key` its `sign` call, `vault-secret` the read of the key a signature needs."""
    started = time.perf_counter()
    try:
        yield
    finally:
        t.histogram(t.KEY_VAULT_SIGN_DURATION, "ms", "Key Vault's part of a signature").record(
            (time.perf_counter() - started) * 1000, {t.CUSTODY: custody}
        )


def vault_name(key_id: str) -> str:
    return PREFIX + check_key_id(key_id)


def verifies_challenge(vault_url: str) -> bool:
    """Whether the SDK must check that a 401 challenge names this vault's own resource.

    Always, except for a stand-in on this machine: a mistyped or hostile host must never receive
    a token for whatever resource its challenge names (storage, say, where this identity reads
    every account). Settings refuse non-vault hosts in Azure; this holds even if they did not.
    """
    return not is_loopback_host(urlparse(vault_url).hostname or "")


def _tag(value: str) -> str:
    return value[:256]  # Key Vault's limit for a tag value


def tags(key_id: str, labels: KeyLabels) -> dict[str, str]:
    """The labels as tags; an empty label is left out (the issuer key names no tenant or
    application, and an empty tag value is not something to count on the service taking)."""
    optional = {
        "tenantId": labels.tenant_id,
        "applicationId": labels.application_id,
        "thumbprint": labels.thumbprint,
        "store": _tag(labels.store) if labels.store else "",
    }
    return {
        "app": "m365-link",
        "keyId": key_id,
        "owner": _tag(labels.owner),
        **{name: value for name, value in optional.items() if value},
    }


def vault_error(exc: Exception, needed_role: str) -> Exception:
    """The app's error for what the vault (or the way to it) answered."""
    if isinstance(exc, AppError | PrivateKeyMissing):
        return exc
    if isinstance(exc, ResourceNotFoundError):
        return PrivateKeyMissing("the key is not in the vault")
    status = getattr(exc, "status_code", None)
    if status in (401, 403):
        # Retrying cannot help: the identity lacks the role (or the vault's firewall refuses
        # it). The operator fixes it; the vault's address is never echoed.
        return ConfigurationError(
            f"Key Vault refused the app's identity (HTTP {status}): give the app's managed "
            f"identity the {needed_role} role on the vault (RBAC permission model)"
        )
    return DependencyUnavailable("key vault", "Key Vault is unavailable; try again shortly")


class _Listed(Protocol):
    """What the SDKs list of a key or secret (KeyProperties, SecretProperties)."""

    @property
    def name(self) -> str | None: ...

    @property
    def created_on(self) -> datetime | None: ...

    @property
    def tags(self) -> dict[str, str] | None: ...


ToError = Callable[[Exception], Exception]


def delete(begin_delete: Callable[[str], object], name: str, error: ToError) -> None:
    """Send the DELETE (the poller would only wait for the soft delete); gone already is fine."""
    try:
        begin_delete(name)
    except ResourceNotFoundError:
        return
    except HttpResponseError as exc:
        if exc.status_code == 409:  # already being deleted
            return
        raise error(exc) from exc
    except AzureError as exc:
        raise error(exc) from exc


def listed(list_items: Callable[[], Iterable[_Listed]], error: ToError) -> Iterator[StoredKey]:
    """This app's keys (or secrets) by key id, with the account store each is tagged with."""
    try:
        found = [
            StoredKey(p.name[len(PREFIX) :], p.created_on, (p.tags or {}).get("store"))
            for p in list_items()
            if p.name and p.name.startswith(PREFIX) and is_canonical_guid(p.name[len(PREFIX) :])
        ]
    except AzureError as exc:
        raise error(exc) from exc
    return iter(found)


def probe(read: Callable[[str], object], name: str, error: ToError) -> None:
    """One point read of a name no key has: 404 proves the vault answered and the identity may
    read, at the cost of one GET whatever the vault holds."""
    try:
        read(name)
    except ResourceNotFoundError:
        return
    except AzureError as exc:
        raise error(exc) from exc
