"""Run every benchmark in turn, each in its own interpreter: `python -m bench [--quick]`.

Exits non-zero when one of them failed (the others still run).
"""

from __future__ import annotations

import subprocess
import sys
import time

from bench._support import ROOT

BENCHMARKS = (
    "keygen",
    "accounts",
    "verify",
    "health_check",
    "custody",
    "fleet",
    "rotation",
    "federated",
    "telemetry",
)


def main() -> int:
    extra = sys.argv[1:]
    failed = []
    for name in BENCHMARKS:
        print(f"\n=== bench.{name} {' '.join(extra)}".rstrip(), flush=True)
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", f"bench.{name}", *extra], cwd=ROOT)
        print(f"=== bench.{name}: exit {result.returncode} in {time.monotonic() - started:.0f} s")
        if result.returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
