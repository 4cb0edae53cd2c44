"""A tiny local HTTP(S) server that answers from a script: status, headers and a delay per request,
and, for the bounded-wait tests, an answer that trickles in one byte at a time.

Why not the sandbox: these tests need any status with any Retry-After (a date, garbage) on any
path, answers sent as slowly as a hostile server would, and to count the requests that reached
the server, with no tenant to set up. `tls=True` serves HTTPS with a CA of its own (`ca_path`),
for clients that insist on HTTPS (MSAL's authority, Key Vault's SDK).
"""

from __future__ import annotations

import contextlib
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import trustme


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    body: bytes = b"{}"
    # Seconds between the bytes of the body (0: all at once); with `trickle_head` the status line
    # and headers trickle too.
    trickle: float = 0.0
    trickle_head: bool = False
    repeat: int = 1  # the body sent this many times over: a huge answer without a huge script


class ScriptedServer:
    """Answers each request with the next `Answer` of the script; the last one repeats."""

    def __init__(self, *, tls: bool = False) -> None:
        self.script: list[Answer] = [Answer()]
        self.routes: dict[str, Answer] = {}  # a request whose path holds the key gets its answer
        self.received: list[tuple[str, str, float]] = []  # method, path, monotonic arrival
        self.sent: list[int] = []  # bytes of each body written before it ended or the client left
        self._sent_changed = threading.Condition()
        self.ca_path = ""
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                answer = server._next(self.command, self.path)
                if answer.delay:
                    time.sleep(answer.delay)
                written = [0]
                with contextlib.suppress(OSError):  # the client gave up: what these tests test
                    server._send(self, answer, written)
                with server._sent_changed:
                    server.sent.append(written[0])
                    server._sent_changed.notify_all()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        scheme = "https" if tls else "http"
        if tls:
            self._serve_tls()
        self.url = f"{scheme}://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _serve_tls(self) -> None:
        ca = trustme.CA(organization_name="Scripted server (local test CA)")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        folder = Path(tempfile.mkdtemp(prefix="scripted-server-"))
        ca.cert_pem.write_to_path(str(folder / "ca.pem"))
        self.ca_path = str(folder / "ca.pem")
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)

    def _send(self, handler: BaseHTTPRequestHandler, answer: Answer, written: list[int]) -> None:
        head = [f"HTTP/1.1 {answer.status} {handler.responses.get(answer.status, ('',))[0]}"]
        headers = {"Content-Type": "application/json", **answer.headers}
        head += [f"{name}: {value}" for name, value in headers.items()]
        head += [f"Content-Length: {len(answer.body) * answer.repeat}", "", ""]
        encoded = "\r\n".join(head).encode("latin-1")
        if answer.trickle and answer.trickle_head:
            self._trickle(handler, encoded + answer.body, answer.trickle, written)
            return
        handler.wfile.write(encoded)
        handler.wfile.flush()
        if answer.trickle:
            self._trickle(handler, answer.body, answer.trickle, written)
            return
        for _ in range(answer.repeat):
            if self._stopping.is_set():
                return
            handler.wfile.write(answer.body)
            written[0] += len(answer.body)

    def _trickle(
        self, handler: BaseHTTPRequestHandler, data: bytes, pause: float, written: list[int]
    ) -> None:
        for index in range(len(data)):
            if self._stopping.wait(pause):
                return
            handler.wfile.write(data[index : index + 1])
            handler.wfile.flush()
            written[0] += 1

    def wait_sent(self, answers: int, timeout: float = 10.0) -> list[int]:
        """The bytes sent per answer, once `answers` answers have ended."""
        with self._sent_changed:
            self._sent_changed.wait_for(lambda: len(self.sent) >= answers, timeout)
            return list(self.sent)

    def _next(self, method: str, path: str) -> Answer:
        with self._lock:
            self.received.append((method, path, time.monotonic()))
            routed = next((a for part, a in self.routes.items() if part in path), None)
            if routed is not None:
                return routed
            return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    def route(self, part: str, answer: Answer) -> None:
        """Answer every request whose path holds `part` with `answer`, whatever the script."""
        with self._lock:
            self.routes[part] = answer

    def answer(self, *answers: Answer) -> None:
        with self._lock:
            self.script = list(answers)
            self.received.clear()
        with self._sent_changed:
            self.sent.clear()

    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()


def scripted_server(*, tls: bool = False) -> Iterator[ScriptedServer]:
    server = ScriptedServer(tls=tls).start()
    try:
        yield server
    finally:
        server.stop()
