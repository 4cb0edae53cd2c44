#!/usr/bin/env bash
# Static security scan of the Bicep templates with checkov.
#
#   bash infra/scan.sh           scan infra/ (what `make test` runs)
#   bash infra/scan.sh DIR       scan another directory (e.g. a broken copy, to
#                                check that this script really fails)
#
# checkov is installed, pinned, into its own virtualenv .venv-checkov at the repo
# top (it pins many packages, so it stays out of the app's .venv). The script exits
# non-zero when any check fails, when any .bicep file cannot be parsed (checkov
# itself only reports unparsable files as "parsing errors" and still exits 0), when
# a suppression has no reason, or when checkov cannot run. Every remaining finding
# must be fixed or suppressed inside the resource with
#   // checkov:skip=CKV_AZURE_NNN: <reason a reviewer would accept>
set -euo pipefail

CHECKOV_VERSION="3.3.30"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-checkov"
PYTHON="${PYTHON:-python3}"
SCAN_DIR="$(cd "${1:-$ROOT/infra}" && pwd)"

# ---- install (once per machine, or when the pin changes) ---------------------------
installed=""
if [[ -x "$VENV/bin/checkov" ]]; then
  installed="$("$VENV/bin/checkov" --version 2>/dev/null || true)"
fi
if [[ "$installed" != "$CHECKOV_VERSION" ]]; then
  echo "scan: installing checkov $CHECKOV_VERSION into $VENV" >&2
  "$PYTHON" -m venv --clear "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
fi

mapfile -t BICEP_FILES < <(find "$SCAN_DIR" -type f -name '*.bicep' | sort)
if [[ ${#BICEP_FILES[@]} -eq 0 ]]; then
  echo "scan: FAILED: no .bicep files under $SCAN_DIR" >&2
  exit 1
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# ---- 1. every file must parse (pycep, the parser checkov uses); every suppression
#         must carry a reason -------------------------------------------------------
if ! "$VENV/bin/python" - "${BICEP_FILES[@]}" <<'PY'
import re
import sys
from pycep import BicepParser

SKIP = re.compile(r"checkov:skip=([A-Za-z0-9_,-]+)(?::(.*))?")
parser = BicepParser()
bad = 0
print("scan: suppressions in the Bicep:")
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    try:
        parser.parse(text=text)
    except Exception as exc:  # pycep raises lark errors of several types
        bad += 1
        msg = str(exc).strip()
        first = msg.splitlines()[0] if msg else type(exc).__name__
        print(f"scan: PARSE ERROR in {path}: {type(exc).__name__}: {first}", file=sys.stderr)
    for lineno, line in enumerate(text.splitlines(), start=1):
        match = SKIP.search(line)
        if not match:
            continue
        if not line.lstrip().startswith("//"):
            bad += 1
            print(f"scan: {path}:{lineno}: the suppression must be a // comment", file=sys.stderr)
        reason = (match.group(2) or "").strip()
        print(f"  {match.group(1)} at {path}:{lineno}")
        if len(reason) < 20:
            bad += 1
            print(f"scan: {path}:{lineno}: {match.group(1)} is suppressed without a real reason", file=sys.stderr)
sys.exit(1 if bad else 0)
PY
then
  echo "scan: FAILED: Bicep parse errors or unexplained suppressions (see above); checkov silently skips files it cannot parse" >&2
  exit 1
fi

# ---- 2. checkov ------------------------------------------------------------------
set +e
"$VENV/bin/checkov" \
  --directory "$SCAN_DIR" \
  --framework bicep \
  --compact --quiet \
  --skip-download \
  -o cli -o json \
  --output-file-path "console,$WORK/results.json"
checkov_rc=$?
set -e

# ---- 3. judge the JSON report -------------------------------------------------------
"$VENV/bin/python" - "$WORK/results.json" "$checkov_rc" "${#BICEP_FILES[@]}" <<'PY'
import json
import sys

path, checkov_rc, n_files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
try:
    with open(path, encoding="utf-8") as fh:
        report = json.load(fh)
except (OSError, ValueError) as exc:
    print(f"scan: FAILED: checkov wrote no readable report (exit {checkov_rc}): {exc}", file=sys.stderr)
    sys.exit(1)

# A single-framework run gives one report object; be tolerant of a list.
reports = report if isinstance(report, list) else [report]
summary = {"passed": 0, "failed": 0, "skipped": 0, "parsing_errors": 0}
parsing_errors, failed = [], []
for rep in reports:
    for key in summary:
        summary[key] += int(rep.get("summary", {}).get(key, 0))
    results = rep.get("results", {})
    parsing_errors += results.get("parsing_errors", [])
    failed += results.get("failed_checks", [])

problems = []
if summary["parsing_errors"] or parsing_errors:
    problems.append(f"{summary['parsing_errors']} file(s) checkov could not parse: {parsing_errors}")
if summary["failed"] or failed:
    problems.append(f"{summary['failed']} failed check(s)")
if summary["passed"] + summary["failed"] + summary["skipped"] == 0:
    problems.append("checkov evaluated no checks at all")
if checkov_rc not in (0, 1):
    problems.append(f"checkov exited with {checkov_rc}")
print(
    f"scan summary: passed={summary['passed']} failed={summary['failed']} "
    f"skipped={summary['skipped']} parse_errors={summary['parsing_errors']} bicep_files={n_files}"
)
if problems:
    for p in problems:
        print(f"scan: FAILED: {p}", file=sys.stderr)
    sys.exit(1)
print("scan: OK")
PY
