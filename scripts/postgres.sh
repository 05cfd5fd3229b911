#!/usr/bin/env bash
# A private PostgreSQL cluster for tests and benchmarks: initdb in a directory of its own, a free
# port on 127.0.0.1 only, nothing system-wide (the Debian package's own cluster is not used).
#
#   scripts/postgres.sh install      install Debian's postgresql package if missing
#   scripts/postgres.sh start DIR    create and start a cluster in DIR; prints the URL of its
#                                    database `trasloco` (user `trasloco`, no password: trust
#                                    on 127.0.0.1 and the socket in DIR only)
#   scripts/postgres.sh stop DIR     stop it (the directory is left for the caller to remove)
#
# POSTGRES_DURABLE=1 keeps fsync on (benchmarks); tests run without it.
# As root the server runs as the `postgres` user, since PostgreSQL refuses to run as root.
set -euo pipefail

bin_dir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$d" ] || { echo "postgres.sh: PostgreSQL is not installed (scripts/postgres.sh install)" >&2; exit 1; }
  echo "$d"
}

as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

case "${1:-}" in
  install)
    if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
      if [ "$(id -u)" != 0 ]; then
        echo "postgres.sh: PostgreSQL is missing; run as root or: sudo apt-get install postgresql" >&2
        exit 1
      fi
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null \
        || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null; }
    fi
    ;;
  start)
    dir=${2:?usage: postgres.sh start DIR}
    bin=$(bin_dir)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -A trust -U trasloco -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    port=$(free_port)
    # Tests need no durability; POSTGRES_DURABLE=1 (benchmarks) keeps fsync and only stops
    # commits from waiting for it, as SQLite's WAL with synchronous = NORMAL does.
    if [ "${POSTGRES_DURABLE:-}" = 1 ]; then
      speed="-c synchronous_commit=off"
    else
      speed="-c fsync=off -c full_page_writes=off -c synchronous_commit=off"
    fi
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=400 $speed" \
      start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U trasloco trasloco
    echo "$port" >"$dir/port"
    echo "postgres://trasloco@127.0.0.1:$port/trasloco"
    ;;
  stop)
    dir=${2:?usage: postgres.sh stop DIR}
    bin=$(bin_dir)
    if [ -f "$dir/data/postmaster.pid" ]; then
      as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    ;;
  *)
    echo "usage: postgres.sh install | start DIR | stop DIR" >&2
    exit 64
    ;;
esac
