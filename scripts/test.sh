#!/usr/bin/env bash
# Runs every test of coursepay on both stores (SQLite and PostgreSQL).
#
# It makes sure PostgreSQL and Redis are running (starting it, or installing it where missing), creates a
# fresh database for this run and points the tests at it. PostgreSQL tests never skip: if the
# database cannot be reached they fail.
#
#   scripts/test.sh                                        # all tests
#   scripts/test.sh -p coursepay-store                     # every target of one crate
#   scripts/test.sh -p coursepay-api --test payment_flow   # one test binary
#
# Without arguments it runs `cargo test --workspace --all-targets`. Extra arguments go to cargo
# test in place of `--workspace`, and in place of `--all-targets` too when they pick targets
# themselves (--lib, --test NAME, --doc, ...).
#
# With no arguments it then prints the load benchmark's short form (bench/run.sh --short), and
# runs the storefront's checks and browser tests (scripts/web-test.sh).
# The full run (no arguments) then fuzzes a live server against its OpenAPI document on both
# stores (scripts/fuzz-api.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

PGHOST=127.0.0.1
PGPORT=5432
export PGPASSWORD=postgres
log() { printf '==> %s\n' "$*" >&2; }

pg_up() { pg_isready -h "$PGHOST" -p "$PGPORT" -q 2>/dev/null; }

ensure_postgres() {
  if pg_up; then return; fi
  if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    log "PostgreSQL is not installed: installing it (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  log "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 60); do pg_up && break; sleep 0.5; done
  pg_up || { log "PostgreSQL did not come up"; exit 1; }
  # A fresh Debian cluster asks TCP clients for a password: give the postgres role one that
  # the test URL carries (harmless where trust auth is configured).
  if command -v runuser >/dev/null 2>&1; then
    runuser -u postgres -- psql -q -c "ALTER USER postgres PASSWORD 'postgres'" >/dev/null 2>&1 || true
  fi
}

# Redis backs the webhook replay guard when REDIS_URL is set; its tests never skip either.
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; }

ensure_redis() {
  if redis_up; then return; fi
  if ! command -v redis-server >/dev/null 2>&1; then
    log "Redis is not installed: installing it (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq redis-server >/dev/null
  fi
  log "starting Redis on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no >/dev/null
  for _ in $(seq 1 40); do redis_up && break; sleep 0.25; done
  redis_up || { log "Redis did not come up"; exit 1; }
}

# The doc-snippet test (crates/cli/tests/doc_snippets.rs) runs the docs' shell blocks, which use
# curl, jq and openssl.
ensure_doc_tools() {
  local missing=()
  for tool in curl jq openssl; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} for the doc snippets (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# Prometheus: crates/cli/tests/prometheus_alerts.rs runs Debian's prometheus against a live
# server to prove the alert rules fire and resolve (it fails, never skips, without it).
ensure_prometheus() {
  if command -v prometheus >/dev/null 2>&1; then return; fi
  log "Prometheus is not installed: installing it (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq prometheus >/dev/null
}

ensure_postgres
ensure_redis
ensure_doc_tools
ensure_prometheus
export TEST_REDIS_URL="redis://127.0.0.1:6379"
# COURSEPAY_TEST_DB lets concurrent runs on one machine use separate databases.
DB="${COURSEPAY_TEST_DB:-coursepay_test}"
log "creating a fresh database $DB"
psql -h "$PGHOST" -p "$PGPORT" -U postgres -d postgres -q -v ON_ERROR_STOP=1 \
  -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
export TEST_DATABASE_URL="postgres://postgres:postgres@$PGHOST:$PGPORT/$DB"
export COURSEPAY_REQUIRE_PG=1

# Whether the arguments choose test targets themselves (then --all-targets would add the rest).
picks_targets() {
  local arg
  for arg in "$@"; do
    case "$arg" in
      --lib | --bin | --bin=* | --bins | --test | --test=* | --tests | --bench | --bench=* | \
        --benches | --example | --example=* | --examples | --all-targets | --doc) return 0 ;;
      --) return 1 ;; # what follows goes to the test binaries
    esac
  done
  return 1
}

if [ "$#" -eq 0 ]; then
  log "running every test (SQLite + PostgreSQL at $PGHOST:$PGPORT/$DB)"
  cargo test --workspace --all-targets
elif picks_targets "$@"; then
  log "running cargo test $* (SQLite + PostgreSQL at $PGHOST:$PGPORT/$DB)"
  cargo test "$@"
else
  log "running cargo test --all-targets $* (SQLite + PostgreSQL at $PGHOST:$PGPORT/$DB)"
  cargo test --all-targets "$@"
fi

if [ "$#" -eq 0 ]; then
  # The load benchmark's short form: figures printed, nothing asserted on time.
  log "load benchmark, short form (bench/run.sh --short)"
  BENCH_DATABASE_URL="postgres://postgres:postgres@$PGHOST:$PGPORT/postgres" bench/run.sh --short
else
  log "arguments given: the load benchmark's short form (bench/run.sh --short) runs only in the full run"
fi

if [ $# -eq 0 ] || [ "${COURSEPAY_WEB_TESTS:-}" = 1 ]; then
  scripts/web-test.sh
else
  log "storefront tests not run: a subset of the Rust tests was asked for (COURSEPAY_WEB_TESTS=1 runs them too)"
fi

if [ "$#" -eq 0 ]; then
  log "schema fuzzing (schemathesis) against coursepay serve on SQLite and PostgreSQL"
  scripts/fuzz-api.sh
else
  log "arguments given: schema fuzzing (scripts/fuzz-api.sh) runs only in the full run"
fi
