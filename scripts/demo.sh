#!/usr/bin/env bash
# A real migration on this machine: two local Dovecot instances, three mailboxes with Italian
# folder names and a few hundred messages: the plan, one campaign run, an unchanged re-run,
# status, verify and the HTML report. Everything lives in ./demo-run (delete it to start over).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
demo=$top/demo-run
bash scripts/dovecot-pair.sh install
cargo build --release --locked --quiet --bin trasloco
bin=$top/target/release/trasloco
bash scripts/dovecot-pair.sh stop "$demo" 2>/dev/null || true
rm -rf "$demo"
mkdir -p "$demo"
SOURCE_IMAP_PORT=31143 SOURCE_IMAPS_PORT=31993 SOURCE_POP3_PORT=31110 SOURCE_POP3S_PORT=31995 SOURCE_SIEVE_PORT=34190 \
TARGET_IMAP_PORT=41143 TARGET_IMAPS_PORT=41993 TARGET_POP3_PORT=41110 TARGET_POP3S_PORT=41995 TARGET_SIEVE_PORT=44190 \
  bash scripts/dovecot-pair.sh start "$demo/servers"
trap 'bash scripts/dovecot-pair.sh stop "$demo/servers"' EXIT

echo "== Seeding the old server (source) with sample mail"
cargo run --release --locked --quiet --example demo_seed -- 31143 alice,bob,carol 400

echo "admin-secret" >"$demo/master-password"
cat >"$demo/accounts.csv" <<CSV
source_user,target_user
alice,alice
bob,bob
carol,carol
CSV
cat >"$demo/campaign.toml" <<TOML
name = "demo: old server to new server"

[source]
host = "127.0.0.1"
port = 31143
tls = "starttls"
ca_file = "servers/tls/ca.crt"
master_user = "admin"
master_password_file = "master-password"

[target]
host = "127.0.0.1"
port = 41993
tls = "implicit"
ca_file = "servers/tls/ca.crt"
master_user = "admin"
master_password_file = "master-password"

[accounts]
file = "accounts.csv"

[run]
jobs = 3
TOML

echo
echo "== The campaign file ($demo/campaign.toml)"
cat "$demo/campaign.toml"
echo
echo "== trasloco plan demo-run/campaign.toml (looks, touches nothing)"
"$bin" --no-progress plan "$demo/campaign.toml"
echo
echo "== trasloco run demo-run/campaign.toml"
"$bin" run "$demo/campaign.toml"
echo
echo "== Running it again: nothing to copy"
"$bin" --no-progress run "$demo/campaign.toml" | tail -n 4
echo
echo "== trasloco status demo-run/campaign.toml"
"$bin" status "$demo/campaign.toml"
echo
echo "== trasloco verify demo-run/campaign.toml --full (every message, both sides, SHA-256)"
"$bin" --no-progress verify "$demo/campaign.toml" --full
echo
echo "== trasloco report demo-run/campaign.toml"
"$bin" report "$demo/campaign.toml"
