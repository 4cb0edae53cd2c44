"""Key + certificate generation against the openssl command line, and import time per function.

Issue 2. Goals: generation of a 2048-bit key + certificate within 1.2x of
`openssl req -x509 -newkey rsa:2048 -nodes` (median over N runs, run interleaved), and each
function module importing in under 300 ms (`python -X importtime`, fresh interpreter).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bench._support import ROOT, arguments, median, ms, note, print_table
from shared.core import certificates

RUNS = {2048: 30, 3072: 15, 4096: 8}
QUICK_RUNS = {2048: 5, 3072: 2, 4096: 1}
IMPORT_REPEATS, QUICK_IMPORT_REPEATS = 5, 1
IMPORT_GOAL_MS = 300.0
RATIO_GOAL = 1.2
HEAVY = ("msal", "azure.keyvault", "azure.data.tables", "azure.identity")
_IMPORTTIME = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|\s*(\S+)\s*$")


def _timed(command: Sequence[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def _ours(bits: int) -> float:
    started = time.perf_counter()
    certificates.generate("x", validity_days=365, key_size=bits, now=datetime.now(UTC))
    return time.perf_counter() - started


def bench_generation(openssl: str, runs: dict[int, int]) -> None:
    """Median wall time per key size: ours (in process) and three openssl commands."""
    start_only = [openssl, "version"]
    rows = []
    ratios: dict[int, float] = {}
    for bits, n in runs.items():
        req = [openssl, "req", "-x509", "-newkey", f"rsa:{bits}", "-nodes"]
        req += ["-keyout", "/dev/null", "-out", "/dev/null", "-subj", "/CN=x", "-days", "365"]
        genpkey = [openssl, "genpkey", "-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{bits}"]
        genpkey += ["-out", "/dev/null"]
        times: dict[str, list[float]] = {"ours": [], "req": [], "genpkey": [], "start": []}
        for _ in range(n):  # interleaved, so a noisy moment hits every column alike
            times["ours"].append(_ours(bits))
            times["req"].append(_timed(req))
            times["genpkey"].append(_timed(genpkey))
            times["start"].append(_timed(start_only))
        m = {name: ms(median(values)) for name, values in times.items()}
        ratios[bits] = m["ours"] / m["req"]
        rows.append(
            [
                bits,
                n,
                m["ours"],
                ms(min(times["ours"])),
                ms(max(times["ours"])),
                m["req"],
                m["genpkey"],
                m["start"],
                ratios[bits],
                m["ours"] / max(m["req"] - m["start"], 1e-9),
            ]
        )
    print_table(
        "Key + self-signed certificate generation (median wall ms)",
        [
            "bits",
            "runs",
            "ours",
            "ours min",
            "ours max",
            "openssl req",
            "openssl genpkey",
            "openssl start",
            "ours/req",
            "ours/(req-start)",
        ],
        rows,
    )
    verdict = "met" if ratios[2048] <= RATIO_GOAL else "MISSED"
    note(
        f"goal ours/openssl req <= {RATIO_GOAL} for 2048 bits: {ratios[2048]:.2f} ({verdict}). "
        "ours = shared.core.certificates.generate in this process (key, certificate, PEM export, "
        "thumbprints); openssl columns include process start-up ('openssl start' = "
        "`openssl version`)."
    )
    versions = subprocess.run([openssl, "version"], capture_output=True, text=True).stdout.strip()
    from cryptography.hazmat.backends.openssl.backend import backend

    note(f"openssl CLI: {versions}; cryptography links {backend.openssl_version_text()}")


def function_folders() -> list[str]:
    return sorted(p.parent.name for p in ROOT.glob("*/function.json"))


@dataclass
class ImportProfile:
    cumulative_ms: float  # the module's own line: everything it imported
    functions_ms: float  # azure.functions inside it
    heavy_ms: dict[str, float]  # heavy packages it pulled in


def import_profile(module: str, env: dict[str, str]) -> ImportProfile:
    """Parse `python -X importtime -c "import <module>"` run in a fresh interpreter."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    profile = ImportProfile(float("nan"), 0.0, {})
    for line in result.stderr.splitlines():
        match = _IMPORTTIME.match(line)
        if not match:
            continue
        cumulative, name = int(match.group(2)) / 1000, match.group(3)
        if name == module:
            profile.cumulative_ms = cumulative
        elif name == "azure.functions":
            profile.functions_ms = cumulative
        for package in HEAVY:
            if name == package or name.startswith(package + "."):
                # A package's outermost line has the largest cumulative time.
                profile.heavy_ms[package] = max(profile.heavy_ms.get(package, 0.0), cumulative)
    return profile


def import_modes(cache_dir: str) -> dict[str, dict[str, str]]:
    """Two ways to start: the app's own modules compiled from source (no .pyc written, as on this
    machine and on a read-only package mount), and every module's bytecode cached (in a
    temporary PYTHONPYCACHEPREFIX, so nothing is written into the checkout)."""
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPYCACHEPREFIX",)}
    return {
        "source": {**base, "PYTHONDONTWRITEBYTECODE": "1"},
        "cached": {
            **{k: v for k, v in base.items() if k != "PYTHONDONTWRITEBYTECODE"},
            "PYTHONPYCACHEPREFIX": cache_dir,
        },
    }


def bench_imports(repeats: int) -> None:
    rows = []
    worst = dict.fromkeys(("source", "cached"), 0.0)
    with tempfile.TemporaryDirectory(prefix="bench-pycache-") as cache_dir:
        modes = import_modes(cache_dir)
        for folder in function_folders():
            figures: dict[str, list[ImportProfile]] = {}
            for mode, env in modes.items():
                import_profile(folder, env)  # warm-up: page cache, and the bytecode cache
                figures[mode] = [import_profile(folder, env) for _ in range(repeats)]
                worst[mode] = max(worst[mode], median([s.cumulative_ms for s in figures[mode]]))
            source = [s.cumulative_ms for s in figures["source"]]
            cached = [s.cumulative_ms for s in figures["cached"]]
            heavy = figures["source"][-1].heavy_ms
            rows.append(
                [
                    folder,
                    median(source),
                    max(source),
                    median(cached),
                    max(cached),
                    median([s.functions_ms for s in figures["source"]]),
                    ", ".join(f"{k} ({v:.0f} ms)" for k, v in heavy.items()) or "none",
                ]
            )
    print_table(
        "Import time of each function module (python -X importtime, fresh process each, "
        f"median of {repeats}; ms)",
        [
            "function",
            "app compiled",
            "max",
            "all cached",
            "max",
            "of which azure.functions",
            "heavy packages imported",
        ],
        rows,
    )
    for mode, label in (("source", "app compiled"), ("cached", "all cached")):
        verdict = "met" if worst[mode] < IMPORT_GOAL_MS else "MISSED"
        note(
            f"goal < {IMPORT_GOAL_MS:.0f} ms each, {label}: worst median {worst[mode]:.0f} ms "
            f"({verdict})"
        )
    note(
        "'app compiled': PYTHONDONTWRITEBYTECODE=1, the app's own modules have no .pyc and are "
        "compiled at each start (site-packages use their installed .pyc); 'all cached': "
        "bytecode of every module cached beforehand"
    )
    note(
        "azure.functions is imported by the Functions host's worker before any function, so "
        "in Azure it is not a cost the app adds; its column is its share of 'app compiled'. "
        "A heavy package's figure counts only what it imported that was not loaded already."
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = arguments(__doc__, argv)
    openssl = shutil.which("openssl")
    if openssl is None:
        print("the openssl command line is needed (Debian package openssl)", file=sys.stderr)
        return 1
    started = time.monotonic()
    bench_generation(openssl, QUICK_RUNS if args.quick else RUNS)
    bench_imports(QUICK_IMPORT_REPEATS if args.quick else IMPORT_REPEATS)
    print(json.dumps({"benchmark": "keygen", "seconds": round(time.monotonic() - started, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
