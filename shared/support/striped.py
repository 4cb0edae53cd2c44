"""Locks striped by key: callers of one key take turns, and memory stays flat however many keys
there are (a fixed number of locks, a key's lock chosen by its hash)."""

from __future__ import annotations

import threading
import zlib


class StripedLocks:
    def __init__(self, stripes: int = 64) -> None:
        self._locks = tuple(threading.Lock() for _ in range(stripes))

    def of(self, key: str) -> threading.Lock:
        return self._locks[zlib.crc32(key.encode()) % len(self._locks)]
