#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: installs Dovecot and headless Chromium (Debian
# packages) if missing, then runs unit, property and integration tests. The integration tests
# start their own pairs of Dovecot instances on 127.0.0.1 through scripts/dovecot-pair.sh;
# Chromium renders the campaign report in one of them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/dovecot-pair.sh install
if ! command -v chromium-headless-shell >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "test.sh: chromium-headless-shell is missing; run as root or: sudo apt-get install chromium-headless-shell" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium-headless-shell >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium-headless-shell >/dev/null; }
fi
cargo test --workspace --all-targets --locked
