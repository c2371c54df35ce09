#!/usr/bin/env bash
# The storefront's checks (web/), called by scripts/test.sh after the Rust tests:
#   1. the client types generated from docs/openapi.json are up to date (npm run gen);
#   2. strict TypeScript, then the Vitest unit tests (client, payment-flow state);
#   3. a fresh Vite build equals the committed web/dist that the server embeds, and its
#      JavaScript fits the budget (60 KB gzip, printed);
#   4. the browser tests: Debian's Chromium driven by playwright-core against a live
#      `coursepay serve` on SQLite and on PostgreSQL (screenshots in target/screenshots/).
# It installs what it needs where missing: Node.js + npm, chromium and fonts-noto-cjk (apt-get),
# and web/node_modules (npm ci, from the npm cache when it can).
#
# Needs: TEST_DATABASE_URL's server reachable (scripts/test.sh brings PostgreSQL up).
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '==> %s\n' "$*" >&2; }

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  log "installing $* (apt-get)"
  for i in 1 2 3 4 5 6; do
    # Another process may hold the dpkg lock for a while: retry.
    if { apt-get update -qq && apt-get install -y -qq "$@" >/dev/null; }; then return 0; fi
    sleep $((i * 5))
  done
  log "apt-get install $* failed"
  return 1
}

missing=()
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing+=(chromium)
dpkg -s fonts-noto-cjk >/dev/null 2>&1 || missing+=(fonts-noto-cjk)
if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  log "Node.js $node_major is too old (need 20 or newer)"
  exit 1
fi

# The committed build must not depend on the machine's VITE_* settings.
unset VITE_SUPABASE_URL VITE_SUPABASE_ANON_KEY VITE_TOSS_CLIENT_KEY

cd web
log "npm ci (web/)"
npm ci --prefer-offline --no-audit --no-fund --loglevel=error

log "generated client types are up to date with docs/openapi.json"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
npx openapi-typescript ../docs/openapi.json -o "$tmp/schema.d.ts" >/dev/null
if ! cmp -s "$tmp/schema.d.ts" client/src/schema.d.ts; then
  diff -u client/src/schema.d.ts "$tmp/schema.d.ts" | head -40 >&2 || true
  log "web/client/src/schema.d.ts is stale: run 'npm run gen' in web/ and commit it"
  exit 1
fi

log "TypeScript (strict)"
npm run --silent typecheck
log "Vitest"
npx vitest run

log "the embedded build (web/dist) is what the sources build"
npx vite build --outDir "$tmp/dist" --emptyOutDir --logLevel warn
if ! diff -r "$tmp/dist" dist >/dev/null; then
  diff -r "$tmp/dist" dist >&2 || true
  log "web/dist is stale: run 'npm run build' in web/ and commit web/dist"
  exit 1
fi
log "JavaScript budget"
node scripts/budget.mjs
cd ..

log "browser tests (Chromium; coursepay serve on SQLite and PostgreSQL)"
cargo build -q -p coursepay-cli
web_db="${COURSEPAY_TEST_DB:-coursepay_test}_web"
psql "${TEST_DATABASE_URL%/*}/postgres" -q -v ON_ERROR_STOP=1 \
  -c "DROP DATABASE IF EXISTS $web_db WITH (FORCE)" -c "CREATE DATABASE $web_db" >/dev/null
COURSEPAY_BIN=target/debug/coursepay BROWSER_PG_URL="${TEST_DATABASE_URL%/*}/$web_db" \
  node --test --test-concurrency=1 web/scripts/browser-test.mjs
