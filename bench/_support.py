"""What every benchmark shares: arguments, statistics, tables, and the local services it runs on.

The sandbox tenant runs in a child process (`python -m localdev.sandbox`), so its CPU work (TLS,
signing tokens, verifying assertions) is not counted in the app's memory and does not hold the
app's GIL, as Microsoft's services would not; both processes share this machine's cores.
Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from localdev.azurite import Azurite, start_azurite

ROOT = Path(__file__).resolve().parent.parent


# --- arguments, output ---------------------------------------------------------------------------
def arguments(
    description: str | None,
    argv: Sequence[str] | None = None,
    flags: Mapping[str, str] | None = None,
) -> argparse.Namespace:
    """`--quick` (smaller sizes, a smoke run), which every benchmark takes, and its own `flags`
    (name -> help; each a boolean switch)."""
    parser = argparse.ArgumentParser(description=(description or "").strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shrink sizes for a smoke run")
    for name, text in (flags or {}).items():
        parser.add_argument(name, action="store_true", help=text)
    return parser.parse_args(argv)


def quiet_logging() -> None:
    """The app logs one line per request; a benchmark prints only its figures."""
    logging.basicConfig(level=logging.ERROR, format="%(name)s %(levelname)s %(message)s")
    logging.getLogger().setLevel(logging.ERROR)
    for noisy in ("werkzeug", "azure", "msal", "urllib3"):  # werkzeug would add its own handler
        logging.getLogger(noisy).setLevel(logging.ERROR)


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain text table: first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        first = row[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    print(f"\n{title}")
    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print(line(row))
    sys.stdout.flush()


def note(text: str) -> None:
    print(f"  note: {text}")
    sys.stdout.flush()


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return str(value)


# --- statistics ----------------------------------------------------------------------------------
def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ms(seconds: float) -> float:
    return seconds * 1000


# --- memory --------------------------------------------------------------------------------------
def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class PeakRss:
    """Peak resident memory of this process during a `with` block, above what it held before.

    Linux lets a process reset its high-water mark (`5` into /proc/self/clear_refs); where that is
    refused, ru_maxrss is used, which only shows a peak above every earlier one.
    """

    def __enter__(self) -> PeakRss:
        self.reset = False
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")
            self.reset = True
        self.before_kb = _status_kb("VmRSS") or 0
        self.maxrss_before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return self

    def __exit__(self, *exc: object) -> None:
        hwm = _status_kb("VmHWM") if self.reset else None
        self.peak_kb = hwm or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.growth_kb = self.peak_kb - (self.before_kb if hwm else self.maxrss_before_kb)


# --- CPU -----------------------------------------------------------------------------------------
def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of a process so far (this one by default), every thread counted."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- loopback ------------------------------------------------------------------------------------
def loopback_only(ca_bundle: str | None = None) -> None:
    """No proxy for loopback traffic; the app's sessions trust the sandbox CA (when given)."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        os.environ.pop(name, None)
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    os.environ.setdefault("AZURE_CORE_COLLECT_TELEMETRY", "false")
    if ca_bundle:
        # requests lets this variable override Session.verify: the machine sets it to the
        # system bundle, which does not hold the sandbox's CA.
        os.environ["REQUESTS_CA_BUNDLE"] = ca_bundle


def _stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- the timer's clock ----------------------------------------------------------------------------
def settled_now() -> datetime:
    """A clock for `health_check.run(now=...)` under which every account verified before the call
    is due and none verified during the run is: wait for the next whole second, answer a moment
    just before it. Due times are kept to the second, so with HEALTH_CHECK_INTERVAL_HOURS=0 an
    account verified in a run's first second would be due again in that run: the run takes it
    again (leasing it) and drops it as already seen, and a run right after skips it while that
    lease lasts."""
    boundary = math.ceil(time.time())
    time.sleep(max(boundary - time.time(), 0.0) + 0.01)
    return datetime.fromtimestamp(boundary - 0.001, UTC)


# --- the sandbox tenant, in its own process ------------------------------------------------------
@dataclass
class SandboxProcess:
    base_url: str
    ca_bundle_path: str
    process: subprocess.Popen[str]
    admin: Any  # localdev.sandbox.SandboxAdmin
    keyvault_url: str = ""

    def app_settings(self) -> dict[str, str]:
        return {"ENTRA_AUTHORITY_HOST": self.base_url, "GRAPH_ENDPOINT": self.base_url}


@contextlib.contextmanager
def sandbox_process() -> Iterator[SandboxProcess]:
    """`python -m localdev.sandbox` on free loopback ports; stopped (SIGTERM) on exit."""
    from localdev.sandbox import SandboxAdmin

    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as folder:
        ca_path = str(Path(folder) / "ca.pem")
        process = subprocess.Popen(
            [sys.executable, "-m", "localdev.sandbox", "--ca-bundle", ca_path],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            base_url = keyvault_url = ""
            assert process.stdout is not None
            for line in process.stdout:
                if line.startswith("sandbox "):
                    base_url = line.split()[1]
                if line.startswith("Key Vault "):
                    keyvault_url = line.split()[2]
                if line.startswith("Ctrl-C"):
                    break
            if not base_url:
                raise RuntimeError(f"the sandbox did not start (exit {process.poll()})")
            yield SandboxProcess(
                base_url, ca_path, process, SandboxAdmin(base_url, ca_path), keyvault_url
            )
        finally:
            _stop(process)
            if process.stdout is not None:
                process.stdout.close()


class SandboxVaultCredential:
    """A TokenCredential for the sandbox's Key Vault stand-in, which takes any bearer token."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken("sandbox-vault-token", int(time.time()) + 3600)


# --- Azurite -------------------------------------------------------------------------------------
@contextlib.contextmanager
def azurite() -> Iterator[Azurite]:
    """The Azurite Table service (in-memory) from node_modules; stopped on exit."""
    instance = start_azurite()
    try:
        yield instance
    finally:
        instance.stop()


# --- the app on the local function host ----------------------------------------------------------
@dataclass
class RunningApp:
    url: str
    context: Any  # shared.context.AppContext
    host: Any  # localdev.host.LocalHost

    def api(self, path: str) -> str:
        return f"{self.url}/api{path}"


def app_settings(state_dir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Local mode (every caller is owner `local-dev`), embedded stores under `state_dir`.

    HEALTH_CHECK_INTERVAL_HOURS=0 (every account due at every timer run, as in the tests): the
    benchmarks time back-to-back `health_check.run`s, and with the default 6 hours a warm run
    would find nothing due. `extra` may set it back (bench.fleet does)."""
    return {
        "AUTH_MODE": "local",
        "LOCAL_STATE_DIR": str(state_dir),
        "HEALTH_CHECK_INTERVAL_HOURS": "0",
        **(extra or {}),
    }


def build_app_context(settings: Mapping[str, str], **options: Any) -> Any:
    """A fresh AppContext (no warm MSAL apps, no metadata cache), installed for the functions."""
    from shared.app.bootstrap import build_context, set_context
    from shared.core.settings import load_settings

    context = build_context(load_settings(settings), **options)
    set_context(context)
    return context


@contextlib.contextmanager
def local_host(settings: Mapping[str, str], **options: Any) -> Iterator[RunningApp]:
    """The function folders served over HTTP on loopback, with a context built from `settings`."""
    from localdev.host import LocalHost
    from shared.app.bootstrap import set_context

    context = build_app_context(settings, **options)
    host = LocalHost()
    url = host.start()
    try:
        yield RunningApp(url, context, host)
    finally:
        host.stop()
        set_context(None)
