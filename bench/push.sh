#!/usr/bin/env bash
# The push benchmarks, in one command: builds release, generates the synthetic app once (cached in
# target/bench-data/N), then runs audience, push and fanout. Every benchmark prints its absolute
# numbers and its ratio to a baseline measured in the same run (see bench/README.md).
#
#   bench/push.sh [--accounts N] [--connections C] [--pushes P] [--in-memory]
#
# --accounts 10000000 for 10M (generation takes a while the first time); --in-memory also runs the
# audience benchmark on an index built in memory straight from the model (no store).
set -euo pipefail
cd "$(dirname "$0")/.."

accounts=1000000 connections=18000 pushes=20 in_memory=
while (($#)); do
  case $1 in
    --accounts) accounts=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --pushes) pushes=$2; shift 2 ;;
    --in-memory) in_memory=1; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

# The commit every report is stamped with, read before the build ("-dirty": the tree has changes).
TAGCAST_BENCH_COMMIT=$(git rev-parse --short HEAD 2> /dev/null || echo unknown)
[[ -z $(git status --porcelain 2> /dev/null) ]] || TAGCAST_BENCH_COMMIT+=-dirty
export TAGCAST_BENCH_COMMIT
cargo build --release --locked -q -p tagcast -p tagcast-bench
bench=./target/release/tagcast-bench
data=target/bench-data/$accounts

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -srm); accounts=$accounts; commit $TAGCAST_BENCH_COMMIT"
echo
echo "== gen"
"$bench" gen --accounts "$accounts" --data "$data"
echo
echo "== audience (store)"
"$bench" audience --data "$data"
if [[ -n $in_memory ]]; then
  echo
  echo "== audience (in memory)"
  "$bench" audience --in-memory --accounts "$accounts"
fi
echo
echo "== push"
"$bench" push --accounts "$accounts" --data "$data"
echo
echo "== fanout"
"$bench" fanout --connections "$connections" --pushes "$pushes"
