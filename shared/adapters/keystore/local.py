"""Custody `local`: private keys as files under LOCAL_STATE_DIR/keys, readable by the owner
alone (0600). For `make run` and tests; refused in Azure.

Beside each `<keyId>.pem` a `<keyId>.json` holds its labels (owner, ids, the account store it
belongs to), as Key Vault holds them in tags.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from shared.adapters.keystore.base import KeyLabels, PrivateKeyMissing, StoredKey, check_key_id
from shared.adapters.keystore.pem_store import KeyGenerator, PemKeyStore
from shared.core.errors import DependencyUnavailable
from shared.support.guid import is_canonical_guid


class LocalKeyStore(PemKeyStore):
    custody = "local"
    backend = "local"

    def __init__(self, folder: Path, *, generate: KeyGenerator | None = None) -> None:
        super().__init__(generate)
        self.folder = folder

    def _path(self, key_id: str, suffix: str = ".pem") -> Path:
        return self.folder / f"{check_key_id(key_id)}{suffix}"

    def _ensure_folder(self) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)

    def _write(self, path: Path, data: bytes) -> None:
        temp = path.with_name(path.name + ".tmp")
        # Created 0600 from the first byte, then renamed: never a moment readable by others,
        # never a half-written file under the real name.
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)

    def _save(self, key_id: str, private_key_pem: bytes, labels: KeyLabels) -> None:
        try:
            self._ensure_folder()
            path = self._path(key_id)
            # Labels first: a key file is never listed without the store it belongs to.
            tags = {**asdict(labels), "not_after": labels.not_after.isoformat()}
            self._write(self._path(key_id, ".json"), json.dumps(tags).encode())
            self._write(path, private_key_pem)
        except OSError as exc:
            raise DependencyUnavailable("key store", f"local key store: {exc.strerror}") from exc

    def _load(self, key_id: str) -> bytes:
        try:
            return self._path(key_id).read_bytes()
        except FileNotFoundError as exc:
            raise PrivateKeyMissing(key_id) from exc
        except OSError as exc:
            raise DependencyUnavailable("key store", f"local key store: {exc.strerror}") from exc

    def delete(self, key_id: str) -> None:
        try:
            self._path(key_id).unlink(missing_ok=True)
            self._path(key_id, ".json").unlink(missing_ok=True)
        except OSError as exc:
            raise DependencyUnavailable("key store", f"local key store: {exc.strerror}") from exc

    def list(self) -> Iterator[StoredKey]:
        if not self.folder.exists():
            return iter(())
        found = []
        for path in self.folder.glob("*.pem"):
            if path.suffix != ".pem" or not is_canonical_guid(path.stem):
                continue  # not a file this store wrote
            try:
                created = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            except FileNotFoundError:
                continue  # deleted since the folder was read
            found.append(StoredKey(path.stem, created, self._store_of(path.stem)))
        return iter(found)

    def _store_of(self, key_id: str) -> str | None:
        try:
            labels = json.loads(self._path(key_id, ".json").read_text())
        except (OSError, ValueError):
            return None  # no labels (gone meanwhile, or written before labels existed)
        store = labels.get("store") if isinstance(labels, dict) else None
        return store if isinstance(store, str) and store else None

    def ping(self) -> None:
        try:
            self._ensure_folder()
            if not os.access(self.folder, os.W_OK):
                raise DependencyUnavailable("key store", "local key store is not writable")
        except OSError as exc:
            raise DependencyUnavailable("key store", f"local key store: {exc.strerror}") from exc
