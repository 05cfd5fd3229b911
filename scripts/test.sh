#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: installs Dovecot, headless Chromium and
# PostgreSQL (Debian packages) if missing, then runs unit, property and integration tests. The
# integration tests start their own pairs of Dovecot instances on 127.0.0.1 through
# scripts/dovecot-pair.sh; Chromium renders the campaign report in one of them. Then the
# state-store and engine tests run again with the state in a private PostgreSQL cluster
# (scripts/postgres.sh), with the tests of workers sharing it.
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
bash scripts/postgres.sh install
cargo test --workspace --all-targets --locked

# The state store on PostgreSQL: every state-store test and the engine's kill/resume, lost
# state and re-run tests again, each state file mapped to a schema of its own in a private
# cluster (see crates/trasloco-state/src/sql.rs); and the workers' tests, which need it.
pg_dir=$(mktemp -d)
trap 'bash scripts/postgres.sh stop "$pg_dir"; rm -rf "$pg_dir"' EXIT
TRASLOCO_TEST_POSTGRES=$(bash scripts/postgres.sh start "$pg_dir")
export TRASLOCO_TEST_POSTGRES
cargo test --locked -p trasloco-state
cargo test --locked -p trasloco-cli --test migrate --test campaign --test workers
