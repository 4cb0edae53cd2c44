"""`DeadlineAdapter`: requests' transport adapter that reads every answer within the deadline of
its unit of work, and no larger than a given size.

A socket's read timeout bounds one read, so a server sending a byte now and then holds a caller
for ever. `DeadlineAdapter`, mounted on every outbound session
(`shared.adapters.http.outbound`), on the JWKS reader and in the Azure SDK's transport
(`shared.adapters.http.azure_pipeline`), bounds the whole answer instead: every read of the
socket, status line and headers included, waits at most what is left of the deadline, and an
answer can be capped in size.
"""

from __future__ import annotations

import http.client
import io
import socket
import time
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import PoolManager

from shared.support.deadline import deadline_at


class AnswerTooLarge(http.client.HTTPException):
    """The answer outgrew the size its session allows (a broken or hostile server)."""


class _BoundedSocketReader(io.RawIOBase):
    """The socket as `http.client` reads an answer from it: each read waits at most what is left
    of this thread's deadline (the socket's own timeout bounds one read only), and an answer
    longer than `limit` bytes is cut off. Both failures are what urllib3 expects of a socket:
    a timeout, or a broken answer."""

    def __init__(self, raw: io.RawIOBase, sock: socket.socket, limit: int | None) -> None:
        super().__init__()
        self._raw, self._sock, self._limit = raw, sock, limit
        self._timeout = sock.gettimeout()  # urllib3 set it to this attempt's read timeout
        self._count = 0

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._raw.fileno()

    def readinto(self, buffer: Any) -> int | None:
        at = deadline_at()
        if at is not None:
            left = at - time.monotonic()
            if left <= 0:
                raise TimeoutError("the deadline for this piece of work passed during the answer")
            self._sock.settimeout(left if self._timeout is None else min(self._timeout, left))
        count = self._raw.readinto(buffer)
        if count and self._limit is not None:
            self._count += count
            if self._count > self._limit:
                raise AnswerTooLarge(f"the answer is larger than {self._limit} bytes")
        return count

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


def _pool_classes(limit: int | None) -> dict[str, type[HTTPConnectionPool]]:
    """urllib3 pools whose connections read every answer through `_BoundedSocketReader`."""

    class BoundedAnswer(http.client.HTTPResponse):
        def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
            super().__init__(sock, *args, **kwargs)
            raw = self.fp.detach()  # the socket's SocketIO; nothing is buffered yet
            self.fp = io.BufferedReader(_BoundedSocketReader(raw, sock, limit))

    class Plain(HTTPConnection):
        response_class = BoundedAnswer

    class Secure(HTTPSConnection):
        response_class = BoundedAnswer

    class PlainPool(HTTPConnectionPool):
        ConnectionCls = Plain

    class SecurePool(HTTPSConnectionPool):
        ConnectionCls = Secure

    return {"http": PlainPool, "https": SecurePool}


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter, with every answer read within this thread's deadline and, when
    `max_answer_bytes` is given, no larger than that."""

    def __init__(self, *, max_answer_bytes: int | None = None, **kwargs: Any) -> None:
        self._pools = _pool_classes(max_answer_bytes)  # before HTTPAdapter makes its pools
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pools

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> PoolManager:
        manager: PoolManager = super().proxy_manager_for(proxy, **kwargs)
        manager.pool_classes_by_scheme = self._pools
        return manager


def mount(session: requests.Session, adapter: HTTPAdapter) -> None:
    for prefix in ("https://", "http://"):
        session.mount(prefix, adapter)
