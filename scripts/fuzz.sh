#!/usr/bin/env bash
# A short fuzzing run of the PEC parsers (classifier + signature check, daticert.xml).
# Needs the nightly toolchain and cargo-fuzz (installed here if missing). Seconds per target:
# FUZZ_SECONDS (default 60). Findings land in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
for target in classify daticert; do
  (cd fuzz && cargo +nightly fuzz run "$target" -- -max_total_time="${FUZZ_SECONDS:-60}")
done
