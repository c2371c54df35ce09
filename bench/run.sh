#!/usr/bin/env bash
# The load benchmark: how many purchases per second one instance takes, and what each costs.
#
#   bench/run.sh                      # full form: release build, 2,000 requests per kind and pace
#   bench/run.sh --toss-latency 300ms,1s --rate 100 --concurrency 256
#                                     # with Toss's own latency modelled in the sandbox
#   bench/run.sh --short              # CI form: the debug binaries the tests build, a few seconds
#
# Other arguments go to coursepay-loadgen (`--help` lists them). It needs PostgreSQL
# (BENCH_DATABASE_URL, a role that may create databases; default the local postgres/postgres)
# and pgbench. docs/benchmarks.md explains the figures and holds the latest ones.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
args=()
if [ "${1:-}" = "--short" ]; then
  shift
  profile=debug
  # Figures only: nothing here is asserted on time (the machine may be busy with anything).
  args=(--n 100 --rate 100 --concurrency 8 --pgbench-clients 4 --pgbench-transactions 50)
fi

if [ "$profile" = release ]; then
  cargo build --release -p coursepay-cli -p coursepay-loadgen
else
  cargo build -p coursepay-cli -p coursepay-loadgen
fi
exec "target/$profile/coursepay-loadgen" --bin "target/$profile/coursepay" "${args[@]}" "$@"
