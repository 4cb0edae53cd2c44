"""A tiny local HTTP server that answers from a script: status, headers and a delay per request.

Why not the sandbox: these tests need any status with any Retry-After (a date, garbage) on any
path, and to count the requests that reached the server, with no TLS or tenant to set up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    body: bytes = b"{}"


class ScriptedServer:
    """Answers each request with the next `Answer` of the script; the last one repeats."""

    def __init__(self) -> None:
        self.script: list[Answer] = [Answer()]
        self.received: list[tuple[str, str, float]] = []  # method, path, monotonic arrival
        self._lock = threading.Lock()
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
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except OSError:
                    pass  # the client gave up waiting: what these tests are about

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _next(self, method: str, path: str) -> Answer:
        with self._lock:
            self.received.append((method, path, time.monotonic()))
            return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    def answer(self, *answers: Answer) -> None:
        with self._lock:
            self.script = list(answers)
            self.received.clear()

    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def scripted_server() -> Iterator[ScriptedServer]:
    server = ScriptedServer().start()
    try:
        yield server
    finally:
        server.stop()
