"""Azurite's Table service from node_modules (npm `azurite`), started on a free port, in memory.

Used by the tests' fixtures and the benchmarks; never by the app itself.
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Azurite's well-known development account key (public, documented by Azurite).
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Azurite:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def connection_string(self) -> str:
        return (
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={AZURITE_KEY};"
            f"TableEndpoint=http://127.0.0.1:{self.port}/devstoreaccount1;"
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_azurite(port: int | None = None, timeout: float = 30) -> Azurite:
    """Start `azurite-table` (telemetry off: the network is closed) and wait until it listens."""
    binary = ROOT / "node_modules" / ".bin" / "azurite-table"
    if not binary.exists():
        raise RuntimeError("Azurite is not installed: run `make test` or `npm ci`")
    port = port or free_port()
    process = subprocess.Popen(
        [
            str(binary),
            "--tableHost",
            "127.0.0.1",
            "--tablePort",
            str(port),
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
            "--disableTelemetry",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return Azurite(port, process)
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"Azurite exited with {process.returncode}") from None
            time.sleep(0.1)
    process.kill()
    process.wait()
    raise RuntimeError(f"Azurite did not start within {timeout:.0f} s")
