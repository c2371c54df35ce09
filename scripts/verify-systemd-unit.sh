#!/usr/bin/env bash
# Checks deploy/systemd/coursepay.service with `systemd-analyze verify`, with ExecStart pointed at
# a real coursepay binary (verify insists the command exists). Any warning fails.
#   scripts/verify-systemd-unit.sh [path/to/coursepay]   (default: target/debug/coursepay)
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(realpath -m "${1:-target/debug/coursepay}")"
[ -x "$bin" ] || cargo build -q -p coursepay-cli
command -v systemd-analyze >/dev/null || (apt-get update -qq && apt-get install -y -qq systemd >/dev/null)
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
sed "s#/usr/local/bin/coursepay#$bin#g" deploy/systemd/coursepay.service > "$dir/coursepay.service"
out="$(systemd-analyze verify "$dir/coursepay.service" 2>&1)" || { echo "$out"; exit 1; }
if [ -n "$out" ]; then echo "$out"; exit 1; fi
echo "deploy/systemd/coursepay.service: verified"
