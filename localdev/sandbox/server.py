"""`Sandbox`: starts the sandbox's two HTTPS servers in background threads and stops them.

Why: tests and the local run need the whole test double with one line (`with Sandbox() as sb`),
on free ports, with a CA of its own that clients trust through `REQUESTS_CA_BUNDLE`, and a stop
that is quick and leaves no thread or connection serving behind.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import socket
import ssl
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import trustme
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from localdev.sandbox.admin import Admin
from localdev.sandbox.admin_client import SandboxAdmin
from localdev.sandbox.admin_federation import FederationAdmin
from localdev.sandbox.app import SandboxApp
from localdev.sandbox.entra import Entra
from localdev.sandbox.federation import Federation
from localdev.sandbox.graph import Graph
from localdev.sandbox.keyvault import KeyVault
from localdev.sandbox.portal_issuer import PortalIssuer
from localdev.sandbox.signing import SigningKey
from localdev.sandbox.state import SandboxState
from localdev.sandbox.traffic import Traffic

log = logging.getLogger("localdev.sandbox")
HOST = "127.0.0.1"
# Request bodies up to this size are read before the app runs, so the connection can be kept
# alive; a larger (or chunked) body is left to werkzeug, which drains it and closes.
KEEP_ALIVE_MAX_BODY = 2 * 1024 * 1024


class _Connections:
    """Open client connections of one server, so stopping can close idle keep-alive ones."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def discard(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)

    def close_all(self) -> None:
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _handler_class(connections: _Connections) -> type[WSGIRequestHandler]:
    class Handler(WSGIRequestHandler):
        """werkzeug's handler, with HTTP/1.1 keep-alive.

        werkzeug sends `Connection: close` on every response, because after each response it
        discards whatever the client sent next (an unread body, it assumes). Here the body is
        read in full before the app runs and werkzeug is then given an empty stream to discard,
        so the connection can stay open: clients skip a TCP + TLS handshake per request, as
        they do with Entra and Graph. Requests that cannot be handled that way (HTTP/1.0,
        `Connection: close`, chunked or large bodies) are served exactly as werkzeug does.
        """

        timeout = 60  # idle keep-alive connections end after a minute
        _wire: Any = None  # the connection's real stream while werkzeug holds an empty one

        def make_environ(self) -> dict[str, Any]:
            environ = super().make_environ()
            length = environ.get("CONTENT_LENGTH") or "0"
            if (
                self.close_connection
                or environ.get("wsgi.input_terminated")
                or not length.isdigit()
                or int(length) > KEEP_ALIVE_MAX_BODY
            ):
                return environ
            environ["wsgi.input"] = io.BytesIO(self.rfile.read(int(length)))
            self._wire, self.rfile = self.rfile, io.BytesIO()
            return environ

        def run_wsgi(self) -> None:
            try:
                super().run_wsgi()
            finally:
                if self._wire is not None:
                    self.rfile, self._wire = self._wire, None

        def send_header(self, keyword: str, value: str) -> None:
            keep = self._wire is not None and not self.close_connection
            if keep and keyword.lower() == "connection" and value.lower() == "close":
                return  # the body was read: the next request can come on this connection
            super().send_header(keyword, value)

        def setup(self) -> None:
            # Without TCP_NODELAY, Nagle's algorithm holds small TLS records: ~12 ms per request.
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().setup()
            connections.add(self.connection)

        def finish(self) -> None:
            connections.discard(self.connection)
            super().finish()

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            pass  # the traffic layer logs each request once, with its target

        def log(self, type: str, message: str, *args: Any) -> None:
            level = logging.ERROR if type == "error" else logging.DEBUG
            log.log(level, "%s - " + message, self.address_string(), *args)

    return Handler


def _listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


class Sandbox:
    """The sandbox tenant: Entra + Graph + portal issuer + admin API, and a Key Vault stand-in.

    `base_url`, `keyvault_url`, `ca_bundle_path`, `admin` and `keyvault` are there once started.
    `ca_bundle_path` is a temporary file removed on stop, unless given to the constructor.
    """

    def __init__(
        self, *, port: int = 0, keyvault_port: int = 0, ca_bundle_path: str | Path | None = None
    ) -> None:
        self._ports = (port, keyvault_port)
        self._ca_path_given = Path(ca_bundle_path) if ca_bundle_path else None
        self._servers: list[tuple[BaseWSGIServer, threading.Thread, _Connections]] = []
        self._started = False
        self.token_signing_key = SigningKey()
        self.portal_signing_key = SigningKey()
        self.state = SandboxState()

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> Sandbox:
        if self._started:
            return self
        ca = trustme.CA(organization_name="Sandbox tenant (local test CA)")
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(HOST, "localhost").configure_cert(tls)
        self.ca_bundle_path = self._write_ca(ca.cert_pem.bytes())

        main_socket, vault_socket = _listen(self._ports[0]), _listen(self._ports[1])
        self.base_url = f"https://{HOST}:{main_socket.getsockname()[1]}"
        self.keyvault_url = f"https://{HOST}:{vault_socket.getsockname()[1]}"

        traffic = Traffic(self.state, self.base_url)
        self.keyvault = KeyVault(traffic, self.keyvault_url)
        self.portal_issuer = PortalIssuer(self.portal_signing_key, self.base_url)
        self.federation = Federation(self.state)
        app = SandboxApp(
            traffic,
            Entra(self.state, self.token_signing_key, self.base_url, self.federation),
            Graph(self.state, self.token_signing_key, self.base_url),
            self.portal_issuer,
            Admin(self.state, self.keyvault, self.portal_issuer, traffic),
            FederationAdmin(self.state, self.federation),
        )
        self._serve(main_socket, app, tls, "sandbox")
        self._serve(vault_socket, self.keyvault, tls, "sandbox-keyvault")
        self.admin = SandboxAdmin(self.base_url, self.ca_bundle_path)
        self._started = True
        log.info("sandbox started: %s (Key Vault %s)", self.base_url, self.keyvault_url)
        return self

    def stop(self) -> None:
        """Stop both servers, close open connections and join the threads."""
        if not self._started:
            return
        for server, _, _ in self._servers:
            server.shutdown()
        for _, thread, connections in self._servers:
            connections.close_all()
            thread.join(timeout=5)
        self._servers.clear()
        if self._ca_path_given is None:
            Path(self.ca_bundle_path).unlink(missing_ok=True)
        self._started = False
        log.info("sandbox stopped")

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- conveniences ---------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget every tenant, fault, latency, request record and secret (keys stay)."""
        self.admin.reset()

    def app_settings(self) -> dict[str, str]:
        """The application settings that point the function app at this sandbox."""
        return {
            "ENTRA_AUTHORITY_HOST": self.base_url,
            "GRAPH_ENDPOINT": self.base_url,
            "KEY_VAULT_URL": self.keyvault_url,
            "REQUESTS_CA_BUNDLE": self.ca_bundle_path,
        }

    # --- helpers --------------------------------------------------------------------------------
    def _write_ca(self, pem: bytes) -> str:
        if self._ca_path_given is not None:
            self._ca_path_given.parent.mkdir(parents=True, exist_ok=True)
            self._ca_path_given.write_bytes(pem)
            return str(self._ca_path_given)
        fd, path = tempfile.mkstemp(prefix="sandbox-ca-", suffix=".pem")
        with os.fdopen(fd, "wb") as file:
            file.write(pem)
        return path

    def _serve(self, sock: socket.socket, app: Any, tls: ssl.SSLContext, name: str) -> None:
        connections = _Connections()
        server = make_server(
            HOST,
            sock.getsockname()[1],
            app,
            threaded=True,
            ssl_context=tls,
            fd=sock.fileno(),
            request_handler=_handler_class(connections),
        )
        sock.close()  # the server holds its own duplicate of the listening socket
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
        )
        thread.start()
        self._servers.append((server, thread, connections))
