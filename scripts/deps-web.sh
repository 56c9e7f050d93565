#!/usr/bin/env bash
# Installs what the HTTP API checks need, from the package registries:
#   schemathesis  PyPI's schemathesis (scripts/api-fuzz.sh)
#   browser       Debian's chromium and playwright-core from npm into
#                 tests/browser (tests/status_page.rs)
# With no argument, both. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
want=("${@:-schemathesis browser}")
want=(${want[*]})
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
for w in "${want[@]}"; do
  case "$w" in
    schemathesis)
      if ! command -v st >/dev/null 2>&1 || ! st --version 2>/dev/null | grep -q "4.32.5"; then
        echo "installing schemathesis 4.32.5" >&2
        python3 -m pip install --quiet "schemathesis==4.32.5"
      fi
      ;;
    browser)
      if [ ! -x /usr/bin/chromium ]; then
        echo "installing chromium" >&2
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
      fi
      if [ ! -d tests/browser/node_modules/playwright-core ]; then
        echo "installing playwright-core (npm ci in tests/browser)" >&2
        (cd tests/browser && npm ci --no-audit --no-fund --silent)
      fi
      ;;
    *) echo "unknown: $w (schemathesis, browser)" >&2; exit 2 ;;
  esac
done
