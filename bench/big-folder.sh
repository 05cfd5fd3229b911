#!/usr/bin/env bash
# Peak memory of one mailbox whose INBOX holds many messages: the first copy and an unchanged
# re-run, for one or more listing windows. Not part of the tests; prints a Markdown table.
#
#   bash bench/big-folder.sh                   # 50,000 messages, the default window (10,000)
#   bash bench/big-folder.sh 100000 10000 1000000
#
# The messages (about 1-3 KB each) are written straight into the source's Maildir, which
# Dovecot indexes on first access: seeding 50,000 over IMAP takes Dovecot ten minutes.
# A window of at least the folder's size behaves as trasloco did before listing windows
# (the whole folder listed and compared at once). BIG_ALT=/path/to/another/trasloco adds the
# same rows for that build, run right after each row of this one on the same corpus (an A/B).
set -euo pipefail
cd "$(dirname "$0")/.."
messages=${1:-50000}
shift || true
windows=("$@")
[ ${#windows[@]} -gt 0 ] || windows=(10000)

bash scripts/dovecot-pair.sh install
if [ ! -x /usr/bin/time ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
fi
cargo build --release --locked -p trasloco-cli >&2
bin=$PWD/target/release/trasloco

dir=$(mktemp -d /tmp/trasloco-big.XXXXXX)
trap 'bash scripts/dovecot-pair.sh stop "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
SOURCE_IMAP_PORT=31143 SOURCE_IMAPS_PORT=31993 SOURCE_POP3_PORT=31110 SOURCE_POP3S_PORT=31995 \
  SOURCE_SIEVE_PORT=34190 TARGET_IMAP_PORT=41143 TARGET_IMAPS_PORT=41993 TARGET_POP3_PORT=41110 \
  TARGET_POP3S_PORT=41995 TARGET_SIEVE_PORT=44190 PAIR_USERS=big \
  bash scripts/dovecot-pair.sh start "$dir" >&2
# shellcheck disable=SC1091
. "$dir/env"

home=$dir/source/home/big
python3 - "$home/Maildir" "$messages" <<'EOF'
import os, random, sys
from email.utils import formatdate
root, n = sys.argv[1], int(sys.argv[2])
for d in ("cur", "new", "tmp"):
    os.makedirs(os.path.join(root, d), exist_ok=True)
rng = random.Random(2026)
base = 1_500_000_000
for i in range(n):
    t = base + i * 600
    body = "".join(f"riga {j} del messaggio {i}: " + "x" * rng.randint(20, 70) + "\r\n"
                   for j in range(rng.randint(10, 40)))
    msg = (f"Message-ID: <big-{i}@bench.trasloco>\r\nDate: {formatdate(t)}\r\nFrom: a{i % 97}@example.org\r\n"
           f"To: big@example.org\r\nSubject: messaggio {i}\r\n\r\n{body}").encode()
    flags = "S" if i % 3 else "FS"
    path = os.path.join(root, "cur", f"{t}.M{i}P1.bench,S={len(msg)}:2,{flags}")
    with open(path, "wb") as f:
        f.write(msg)
    os.utime(path, (t, t))
EOF
if [ "$(id -u)" = 0 ]; then
  chown -R trasloco-mail: "$home"
fi

export TRASLOCO_FROM_PASSWORD=big-pw TRASLOCO_TO_PASSWORD=big-pw
run() {
  local bin=$1 window=$2
  /usr/bin/time -f "%e %M" -o "$dir/time" "$bin" --no-progress migrate \
    --from "imap://big@127.0.0.1:$SOURCE_IMAP_PORT" --to "imap://big@127.0.0.1:$TARGET_IMAP_PORT" \
    --ca-file "$CA_FILE" --state "$dir/state.sqlite" --reports "$dir/reports" \
    --listing-window "$window" >"$dir/out" 2>&1 || { cat "$dir/out" >&2; exit 1; }
  read -r secs kib <"$dir/time"
  echo "$secs $((kib / 1024))"
}
# Dovecot indexes the new Maildir on first access; do that before anything is timed.
"$bin" --no-progress migrate --dry-run --from "imap://big@127.0.0.1:$SOURCE_IMAP_PORT" \
  --to "imap://big@127.0.0.1:$TARGET_IMAP_PORT" --ca-file "$CA_FILE" \
  --state "$dir/dry.sqlite" --reports "$dir/reports" >/dev/null 2>&1 || true

echo "| messages in INBOX | build | listing window | first copy s | first copy peak RSS MiB | unchanged re-run s (median of 3) | re-run peak RSS MiB |"
echo "|---:|---|---:|---:|---:|---:|---:|"
builds=("this:$bin")
[ -z "${BIG_ALT:-}" ] || builds+=("alt:$BIG_ALT")
for w in "${windows[@]}"; do
  for b in "${builds[@]}"; do
    bash scripts/dovecot-pair.sh reset-target "$dir" >/dev/null
    rm -f "$dir"/state.sqlite*
    read -r s1 m1 < <(run "${b#*:}" "$w")
    grep -q "in sync" "$dir/out" || { cat "$dir/out" >&2; exit 1; }
    # The re-run three times: the median of its seconds, the largest RSS.
    reruns=()
    m2=0
    for _ in 1 2 3; do
      read -r s m < <(run "${b#*:}" "$w")
      grep -q " 0 copied" "$dir/out" || { cat "$dir/out" >&2; exit 1; }
      reruns+=("$s")
      [ "$m" -gt "$m2" ] && m2=$m
    done
    s2=$(printf '%s\n' "${reruns[@]}" | sort -n | sed -n 2p)
    echo "| $messages | ${b%%:*} | $w | $s1 | $m1 | $s2 | $m2 |"
  done
done
