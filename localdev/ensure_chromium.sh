#!/usr/bin/env bash
# The browser tests drive Debian's Chromium. `make test` calls this first: when Chromium is
# missing it installs Debian's package if it can (root with apt-get), else it stops at once with
# the one command to run. CHROMIUM_PATH pointing at a browser skips all of this.
set -euo pipefail
if [[ -n "${CHROMIUM_PATH:-}" && -x "${CHROMIUM_PATH}" ]]; then exit 0; fi
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || [[ -x /usr/bin/chromium ]]; then exit 0; fi
if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
  echo "Chromium is missing: installing Debian's chromium package for the browser tests" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Bounded: a registry that stops answering fails `make test` within minutes, not never.
  timeout 300 apt-get update -qq
  timeout 900 apt-get install -y -qq chromium >/dev/null
  exit 0
fi
echo "The browser tests need Chromium. Install it once with:" >&2
echo "    sudo apt-get install -y chromium      (or set CHROMIUM_PATH to a Chromium binary)" >&2
exit 1
