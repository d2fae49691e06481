#!/usr/bin/env bash
# Side by side on this machine: the example portal (release build,
# in-memory stores) and a stock Django 5.2 PasswordResetView (gunicorn, 2
# sync workers, SQLite, mail sent inside the POST). Each app mails its own
# counting SMTP sink (aiosmtpd, sink.py); load comes from
# `wrk -t2 -c16 -d DURATION` (forgot.lua), every request naming a different
# existing account, rate limits off, fast hashing on both sides. Django
# gets 20,000 users (its stock form looks an address up with a
# case-insensitive match, a scan of the user table: with 200,000 users it
# answers an order of magnitude slower), the portal 200,000 load accounts;
# each side's requests cycle through its own accounts.
#
#   examples/portal/compare/django/run.sh [WORKDIR] [DURATION]
#
# WORKDIR (default /tmp/resetkit-vs-django) gets the Python venv (Django,
# gunicorn and aiosmtpd from PyPI), the SQLite database and the sinks'
# count files. Each app gets two runs back to back: "fresh" (its queues
# empty: what it accepts while the inbox has room) and "again" (right
# after: what it sustains). Each run prints the answers by status, the
# mails the sink received during the load (per second) and in the 3 s after.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../../.." && pwd)
work=${1:-/tmp/resetkit-vs-django}
dur=${2:-10s}
command -v wrk >/dev/null || { echo "run.sh needs wrk (apt-get install wrk)" >&2; exit 1; }
mkdir -p "$work"
export PYTHONDONTWRITEBYTECODE=1 DJANGO_DB="$work/django-20000-users.sqlite3"
py="$work/venv/bin/python"
if [ ! -x "$py" ]; then
  python3 -m venv "$work/venv"
fi
"$work/venv/bin/pip" install -q "Django==5.2.*" gunicorn aiosmtpd
if [ ! -s "$DJANGO_DB" ]; then
  (cd "$here" && "$py" manage.py migrate -v0 && "$py" seed.py 20000)
fi
(cd "$root" && cargo build -q --release -p resetkit-portal --bin resetkit-portal)

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# sink PORT NAME: starts a counting sink writing $work/count-NAME.txt.
sink() {
  : > "$work/count-$2.txt"
  "$py" "$here/sink.py" "$1" "$work/count-$2.txt" & pids+=($!)
}
# ready URL: waits until URL answers 200.
ready() {
  for _ in $(seq 600); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ] && return 0
    sleep 0.1
  done
  echo "$1 did not come up" >&2
  exit 1
}
# load LABEL URL FIELD CSRF_FIELD NAME ACCOUNTS: one wrk run against the
# form at URL, naming load{n}@load.test for n cycling below ACCOUNTS.
load() {
  local label=$1 url=$2 field=$3 csrf_field=$4 count="$work/count-$5.txt" accounts=$6
  local jar page token cookie c0 c1 c2 t0 t1
  jar=$(mktemp)
  page=$(curl -s -c "$jar" "$url")
  token=$(printf '%s' "$page" | grep -o "name=\"$csrf_field\" value=\"[^\"]*\"" | head -1 | sed 's/.*value="//; s/"$//')
  # (curl writes HttpOnly cookies as "#HttpOnly_" lines)
  cookie=$(awk '{sub(/^#HttpOnly_/, "")} !/^#/ && NF>=7 {printf "%s%s=%s", (n++ ? "; " : ""), $6, $7}' "$jar")
  rm -f "$jar"
  [ -n "$token" ] || { echo "no CSRF token in $url" >&2; exit 1; }
  last() { tail -1 "$count" | awk '{print $2}'; }
  sleep 0.3
  c0=$(last); t0=$(date +%s.%N)
  local out
  out=$(wrk -t2 -c16 -d"$dur" -s "$here/forgot.lua" "$url" -- "$field" "$csrf_field" "$token" "$cookie" "$accounts")
  t1=$(date +%s.%N); sleep 0.3; c1=$(last)
  sleep 3
  c2=$(last)
  printf '%-22s %s\n' "$label" "$(printf '%s\n' "$out" | grep '^accepted')"
  python3 -c "print(f'{\"\":22} delivered during the load {$c1-$c0} ({($c1-$c0)/($t1-$t0):.0f}/s), in the 3 s after {$c2-$c1}')"
}

echo "== $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); wrk -t2 -c16 -d$dur"
sink 2626 django
(cd "$here" && SINK_PORT=2626 "$work/venv/bin/gunicorn" -w 2 -b 127.0.0.1:8001 djsite.wsgi \
  --log-level warning) & pids+=($!)
ready http://127.0.0.1:8001/accounts/password_reset/
load "django, fresh" http://127.0.0.1:8001/accounts/password_reset/ email csrfmiddlewaretoken django 20000
load "django, again" http://127.0.0.1:8001/accounts/password_reset/ email csrfmiddlewaretoken django 20000
cleanup; pids=()
sleep 1

sink 2627 portal
env -u DATABASE_URL "$root/target/release/resetkit-portal" --listen 127.0.0.1:8002 \
  --smtp "smtp://127.0.0.1:2627?tls=none&reuse=true" --fast-hash --rate-limits off \
  --load-test-accounts 200000 >"$work/portal.log" 2>&1 & pids+=($!)
ready http://127.0.0.1:8002/forgot
load "portal, fresh" http://127.0.0.1:8002/forgot identifier csrf_token portal 200000
load "portal, again" http://127.0.0.1:8002/forgot identifier csrf_token portal 200000
