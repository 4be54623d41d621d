#!/usr/bin/env bash
# Three tagcast nodes on one PostgreSQL against one node, in one command (issue 9): durable
# add_tag through three nodes at once vs through one; the replication lag (a tag added on node1
# under an add_tag load, counted on node2 and node3 from their in-memory indexes); one push at a
# time to S WebSocket sessions spread over three nodes vs all on one (deliveries/s, and the bytes
# between the nodes and PostgreSQL per push); the time for a node to join at M accounts (rebuild
# and catch up). Builds release, starts a throwaway PostgreSQL 15 on loopback (the durable
# settings of bench/lib.sh, with pg_stat_statements preloaded), runs `tagcast-bench cluster`
# (which starts and stops the nodes), prints one report, then stops what it started and removes
# its temporary folder. See bench/README.md.
#
#   bench/cluster.sh [--accounts N] [--concurrency C] [--seconds S] [--probes P]
#                    [--sessions W] [--pushes K] [--join-accounts M]
#                    # N = 10000, C = 64, S = 10, P = 500, W = 18000, K = 10, M = 1000000
#   bench/cluster.sh --join-accounts 10000000   # the join at 10M (the first generation takes
#                                               # minutes; cached in target/bench-data/M)
#   bench/cluster.sh --smoke                    # tiny sizes: end to end in about a minute
#
# The report is also written to target/bench-logs/cluster-M.md. Fails (non-zero, FAILED, no
# report) on any error: a failed request, a session that missed a push, counts that differ
# between the nodes or from the tables, a step that fails.
set -euo pipefail
cd "$(dirname "$0")/.."

accounts=10000 concurrency=64 seconds=10 probes=500 sessions=18000 pushes=10 join=1000000 smoke=
while (($#)); do
  case $1 in
    --accounts) accounts=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --probes) probes=$2; shift 2 ;;
    --sessions) sessions=$2; shift 2 ;;
    --pushes) pushes=$2; shift 2 ;;
    --join-accounts) join=$2; shift 2 ;;
    --smoke) smoke=1; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [[ -n $smoke ]]; then
  accounts=1000 concurrency=9 seconds=2 probes=40 sessions=300 pushes=3 join=2000
fi

began=$SECONDS
# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_commit
echo "== machine"
echo "$(bench_machine); accounts=$accounts sessions=$sessions join-accounts=$join; commit $TAGCAST_BENCH_COMMIT"
echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
# One descriptor per session in the client, and in the node holding it: the soft limit up to
# the hard one (tagcast-bench raises it too, and caps the sessions at what fits).
ulimit -Sn "$(ulimit -Hn)"
echo "open-file limit: $(ulimit -Sn)"

bench_postgres_run bench/cluster.sh cluster

mkdir -p target/bench-logs
report=target/bench-logs/cluster-$join.md
# A failed run leaves no report, not even an earlier one.
rm -f "$report"
./target/release/tagcast-bench cluster \
  --postgres "postgres://postgres@127.0.0.1:$pg_port" \
  --accounts "$accounts" --concurrency "$concurrency" --seconds "$seconds" \
  --probes "$probes" --sessions "$sessions" --pushes "$pushes" \
  --join-accounts "$join" --fsync-probe-us "$probe" \
  --work "$tmp/work" --out "$report"

echo "load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "bench/cluster.sh: done in $((SECONDS - began)) s"
