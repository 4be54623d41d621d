#!/usr/bin/env bash
# tagcast on its two stores, in one command (issue 8): durable add_tag and get_tag over HTTP on the
# embedded store and on PostgreSQL, next to the raw batched PostgreSQL baseline of the same
# requests; then start-up at M accounts (the synthetic app migrated into PostgreSQL with
# `tagcast migrate`, the store opened from PostgreSQL and from the embedded file). Builds release,
# starts a throwaway PostgreSQL 15 on loopback (the durable settings of bench/lib.sh, with
# pg_stat_statements preloaded), runs `tagcast-bench store`, prints one table, then stops what it
# started and removes its temporary folder. See bench/README.md.
#
#   bench/store.sh [--accounts N] [--concurrency C] [--seconds S] [--rebuild-accounts M]
#                  # N = 10000, C = 64, S = 10, M = 10000000 by default
#   bench/store.sh --rebuild-accounts 1000000    # start-up at 1M (10M: the first generation and
#                                                # the migration take minutes)
#   bench/store.sh --smoke                       # tiny sizes, 1 s runs: end to end in a minute
#
# The report is also written to target/bench-logs/store-N.md. Fails (non-zero, no report) on any
# error: a failed request, a count that differs between the stores, a step that fails.
set -euo pipefail
cd "$(dirname "$0")/.."

accounts=10000 concurrency=64 seconds=10 rebuild=10000000 smoke=
while (($#)); do
  case $1 in
    --accounts) accounts=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --rebuild-accounts) rebuild=$2; shift 2 ;;
    --smoke) smoke=1; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [[ -n $smoke ]]; then
  accounts=1000 concurrency=8 seconds=1 rebuild=2000
fi

began=$SECONDS
# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_commit
echo "== machine"
echo "$(bench_machine); accounts=$accounts rebuild-accounts=$rebuild; commit $TAGCAST_BENCH_COMMIT"
echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"

bench_postgres_run bench/store.sh store

mkdir -p target/bench-logs
# A failed run leaves no report, not even an earlier one.
rm -f "target/bench-logs/store-$accounts.md"
./target/release/tagcast-bench store \
  --postgres "postgres://postgres@127.0.0.1:$pg_port" \
  --accounts "$accounts" --concurrency "$concurrency" --seconds "$seconds" \
  --rebuild-accounts "$rebuild" --fsync-probe-us "$probe" \
  --work "$tmp/work" --out "target/bench-logs/store-$accounts.md"

echo "load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "bench/store.sh: done in $((SECONDS - began)) s"
