#!/usr/bin/env bash
# Schema fuzzing: schemathesis (pinned, installed into a virtual environment under target/)
# against a live `coursepay serve` with the built-in Toss sandbox, on SQLite and, when
# TEST_DATABASE_URL is set, on PostgreSQL. Every operation of GET /openapi.json, with valid
# user and service-role tokens (`coursepay token`), positive and negative data, and the
# document's links (checkout → confirm → order) in the stateful phase. Checks: no server
# error, status codes, bodies, headers and content types as the document says.
#
#   scripts/fuzz-api.sh                 # SQLite, and PostgreSQL if TEST_DATABASE_URL is set
#   FUZZ_MAX_EXAMPLES=200 scripts/fuzz-api.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
MAX_EXAMPLES="${FUZZ_MAX_EXAMPLES:-25}"
VENV="$PWD/target/schemathesis-venv"
log() { printf '==> fuzz: %s\n' "$*" >&2; }

if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  log "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo build -q -p coursepay-cli
BIN="$PWD/target/debug/coursepay"
WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# Start `coursepay serve` on a free port with the given DATABASE_URL; sets BASE.
start_server() {
  local db_url="$1" name="$2"
  : >"$WORK/$name.log"
  # `exec`: $! must be the server itself, not a subshell that `kill` would leave it behind.
  (cd "$WORK" && exec env DATABASE_URL="$db_url" LISTEN_ADDR=127.0.0.1:0 RATE_LIMIT_PER_SECOND=0 \
    "$BIN" serve >"$WORK/$name.out" 2>"$WORK/$name.log") &
  SERVER_PID=$!
  BASE=
  for _ in $(seq 1 100); do
    BASE=$(grep -o 'listening on http://[0-9.:]*' "$WORK/$name.log" | head -n 1 | sed 's/listening on //') || true
    if [ -n "$BASE" ] && curl -fsS "$BASE/readyz" >/dev/null 2>&1; then return; fi
    sleep 0.2
  done
  log "coursepay serve did not start:"; cat "$WORK/$name.log" >&2; exit 1
}

stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}

CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance
TOTAL_FAILED=0
CASES=0
PASSED=0

# One schemathesis run; its summary goes to the log and the counts to $WORK/counts.
fuzz() {
  local name="$1" token="$2" phases="$3"; shift 3
  local out="$WORK/st-$name.txt" status=0
  # From the scratch directory: schemathesis keeps a cache where it runs. One worker: with two,
  # Python 3.11.7 here once failed a run inside schemathesis itself with "AST constructor
  # recursion depth mismatch" (a CPython error seen when threads build ASTs, python/cpython
  # issue 106905) although every case had passed. One worker costs no time here.
  (cd "$WORK" && "$VENV/bin/schemathesis" run "$BASE/openapi.json" \
    --checks "$CHECKS" --phases "$phases" \
    --max-examples "$MAX_EXAMPLES" --seed 9 --workers 1 --no-shrink \
    --request-timeout 20 --warnings off \
    -H "Authorization: Bearer $token" "$@") >"$out" 2>&1 || status=$?
  grep -E 'generated|passed|failed|Seed' "$out" | tail -n 6 >&2
  local generated passed
  generated=$(grep -oE '[0-9]+ generated' "$out" | tail -n 1 | grep -oE '[0-9]+' || echo 0)
  passed=$(grep -oE '[0-9]+ passed$|[0-9]+ passed,' "$out" | tail -n 1 | grep -oE '[0-9]+' || echo 0)
  CASES=$((CASES + generated))
  [ "$status" -eq 0 ] && PASSED=$((PASSED + passed))
  if [ "$status" -ne 0 ]; then
    log "$name: schemathesis failed (exit $status); full output:"
    cat "$out" >&2
    TOTAL_FAILED=$((TOTAL_FAILED + 1))
  fi
}

run_store() {
  local label="$1" db_url="$2"
  start_server "$db_url" "$label"
  local user admin
  user=$("$BIN" token --user "$(cat /proc/sys/kernel/random/uuid)")
  admin=$("$BIN" token --role service_role)
  log "$label: $BASE, user operations"
  fuzz "$label-user" "$user" examples,coverage,fuzzing,stateful --exclude-tag admin
  log "$label: $BASE, service-role operations"
  # The document's links start and end in user operations: no stateful phase here.
  fuzz "$label-admin" "$admin" examples,coverage,fuzzing --include-tag admin
  stop_server
}

started=$(date +%s)
run_store sqlite "sqlite://$WORK/fuzz.db"
if [ -n "${TEST_DATABASE_URL:-}" ]; then
  run_store postgres "$TEST_DATABASE_URL"
fi
log "done in $(( $(date +%s) - started )) s: $CASES cases generated, failed runs: $TOTAL_FAILED"
echo "fuzz: $PASSED passed, $((CASES - PASSED)) failed"
[ "$TOTAL_FAILED" -eq 0 ]
