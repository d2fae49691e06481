#!/usr/bin/env bash
# Starts a throwaway PostgreSQL 15 cluster for resetkit's tests and prints
#   export DATABASE_URL=postgres://postgres@127.0.0.1:PORT/postgres
# on stdout, so callers can run:  eval "$(scripts/start-postgres.sh)"
#
#   scripts/start-postgres.sh [start] [DIR]   start (or reuse) a cluster in DIR
#   scripts/start-postgres.sh stop [DIR]      stop it (and delete DIR)
#   scripts/start-postgres.sh status [DIR]
#
# DIR defaults to $RESETKIT_PG_DIR or /tmp/resetkit-pg. The cluster trusts
# every local connection and runs with fsync=off: it is for tests only.
# Running again while the cluster is up prints the same URL (idempotent).
# Works as root (initdb/postgres run as the `postgres` user via runuser) or
# as an ordinary user (then they run as that user).
set -euo pipefail

PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
cmd="${1:-start}"
case "$cmd" in
  start|stop|status) shift || true ;;
  *) cmd=start ;;
esac
DIR="${1:-${RESETKIT_PG_DIR:-/tmp/resetkit-pg}}"
DATA="$DIR/data"
SOCK="$DIR/socket"
LOG="$DIR/server.log"

log() { echo "start-postgres: $*" >&2; }

if [ "$(id -u)" = "0" ]; then
  RUN_AS=(runuser -u postgres --)
  OWNER=postgres
else
  RUN_AS=()
  OWNER="$(id -un)"
fi

if [ ! -x "$PG_BIN/pg_ctl" ]; then
  log "PostgreSQL 15 binaries not found in $PG_BIN (apt-get install postgresql-15)"
  exit 1
fi

pg_ctl() { "${RUN_AS[@]}" "$PG_BIN/pg_ctl" "$@"; }

running() { [ -f "$DATA/postmaster.pid" ] && pg_ctl -D "$DATA" status >/dev/null 2>&1; }

print_url() {
  local port
  port="$(cat "$DIR/port")"
  echo "export DATABASE_URL=postgres://postgres@127.0.0.1:${port}/postgres"
  log "cluster in $DIR on port $port; stop it with: $0 stop $DIR"
}

case "$cmd" in
  stop)
    if running; then pg_ctl -D "$DATA" -m fast -w stop >&2; fi
    rm -rf "$DIR"
    log "stopped and removed $DIR"
    exit 0 ;;
  status)
    if running; then print_url; exit 0; else log "not running ($DIR)"; exit 3; fi ;;
esac

if running && [ -f "$DIR/port" ]; then
  print_url
  exit 0
fi

free_port() {
  python3 - <<'PY' 2>/dev/null || echo $(( 20000 + RANDOM % 20000 ))
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

mkdir -p "$DIR"
chmod 755 "$DIR"
if [ ! -f "$DATA/PG_VERSION" ]; then
  rm -rf "$DATA"
  mkdir -p "$DATA" "$SOCK"
  chown -R "$OWNER" "$DIR"
  chmod 700 "$DATA"
  "${RUN_AS[@]}" "$PG_BIN/initdb" -D "$DATA" --auth=trust --username=postgres \
    --encoding=UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 \
    || { log "initdb failed:"; cat "$DIR/initdb.log" >&2; exit 1; }
fi
mkdir -p "$SOCK"
chown "$OWNER" "$SOCK"

for attempt in 1 2 3 4 5; do
  port="$(free_port)"
  echo "$port" >"$DIR/port"
  chown "$OWNER" "$DIR/port"
  if pg_ctl -D "$DATA" -l "$LOG" -w -t 30 start \
      -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$SOCK -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
      >/dev/null 2>&1; then
    break
  fi
  log "start on port $port failed (attempt $attempt):"
  tail -n 5 "$LOG" >&2 || true
  if [ "$attempt" = 5 ]; then exit 1; fi
done

for _ in $(seq 1 100); do
  if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port"; then
    print_url
    exit 0
  fi
  sleep 0.1
done
log "server did not become ready; log follows"
cat "$LOG" >&2
exit 1
