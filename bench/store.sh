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

echo "== build"
cargo build --release --locked -q -p tagcast -p tagcast-bench -p tagcast-loadgen

echo "== PostgreSQL"
scripts/postgres.sh install
pg_version=$(/usr/lib/postgresql/15/bin/postgres --version | awk '{print $3}')
[[ ${pg_version%%.*} == 15 ]] || { echo "PostgreSQL 15 expected, found $pg_version" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tagcast-store-bench.XXXXXX")
chmod 755 "$tmp"
pg_data=
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  # tagcast-bench kills the servers it started when it exits (also on failure).
  if [[ -n $pg_data ]]; then
    scripts/postgres.sh stop "$pg_data"
  fi
  rm -rf "$tmp"
  if ((status != 0)); then echo "bench/store.sh: FAILED (exit $status)" >&2; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

probe=$(fsync_probe_us "$tmp")
echo "fsync probe: 1000 synchronous 8 KiB writes (dd oflag=dsync) in ${TMPDIR:-/tmp}: $probe us each"

# The same durable settings as bench/run.sh, and pg_stat_statements for the statement counts (on
# for every PostgreSQL run alike).
{
  pg_bench_conf
  echo "shared_preload_libraries = 'pg_stat_statements'"
} > "$tmp/pg.conf"
pg_data=$tmp/pg
pg_port=$(scripts/postgres.sh start "$pg_data" 25432 "$tmp/pg.conf")
echo "PostgreSQL $pg_version on 127.0.0.1:$pg_port (data in $pg_data)"

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
