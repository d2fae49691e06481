#!/usr/bin/env bash
# Runs resetkit's whole test suite: starts (or reuses) a throwaway PostgreSQL
# cluster, exports DATABASE_URL, and runs `cargo test --workspace`.
# Extra arguments are passed to cargo test (e.g. `scripts/test.sh -p resetkit`).
# Set RESETKIT_REQUIRE_DB=1 to make a skipped database test fail (CI does).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${DATABASE_URL:-}" ]; then
  if url_line="$(scripts/start-postgres.sh)"; then
    eval "$url_line"
  else
    echo "test.sh: could not start PostgreSQL; database tests will skip (or fail with RESETKIT_REQUIRE_DB=1)" >&2
  fi
fi
export DATABASE_URL="${DATABASE_URL:-}"
[ -n "$DATABASE_URL" ] || unset DATABASE_URL

exec cargo test --workspace "$@"
