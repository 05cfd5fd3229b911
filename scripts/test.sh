#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: installs Dovecot (Debian packages) if missing,
# then runs unit, property and integration tests. The integration tests start their own pairs
# of Dovecot instances on 127.0.0.1 through scripts/dovecot-pair.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/dovecot-pair.sh install
cargo test --workspace --all-targets --locked
