#!/usr/bin/env bash
# Measures add_tag and get_tag throughput over HTTP against a release build of tagcast with its
# durable store (every add_tag acknowledged only after its group commit is on disk).
#
#   bench/throughput.sh [--accounts N] [--concurrency C] [--seconds S]
set -euo pipefail
cd "$(dirname "$0")/.."

accounts=10000 concurrency=64 seconds=10
while (($#)); do
  case $1 in
    --accounts) accounts=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

# The commit every report is stamped with, read before the build ("-dirty": the tree has changes).
TAGCAST_BENCH_COMMIT=$(git rev-parse --short HEAD 2> /dev/null || echo unknown)
[[ -z $(git status --porcelain 2> /dev/null) ]] || TAGCAST_BENCH_COMMIT+=-dirty
export TAGCAST_BENCH_COMMIT
cargo build --release --locked -q -p tagcast -p tagcast-loadgen
work=$(mktemp -d)
server_pid=
cleanup() { [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

key=bench-secret-key
cat > "$work/tagcast.toml" <<TOML
listen = "127.0.0.1:0"
data_dir = "$work/data"
[[apps]]
sdkappid = 1400000000
secret_key = "$key"
admins = ["administrator"]
[apps.limits]
api_calls_per_second = 1000000
TOML

./target/release/tagcast serve --config "$work/tagcast.toml" > "$work/stdout" 2> "$work/stderr" &
server_pid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/stdout" && break; sleep 0.1; done
url=$(sed -n 's/^tagcast listening on //p' "$work/stdout")
[[ -n $url ]] || { cat "$work/stderr"; exit 1; }

load() {
  ./target/release/tagcast-loadgen --url "$url" --sdkappid 1400000000 --key "$key" \
    --accounts "$accounts" --concurrency "$concurrency" --seconds "$seconds" "$@"
}
echo "machine: $(nproc) cores, $(uname -srm); accounts=$accounts concurrency=$concurrency seconds=$seconds; commit $TAGCAST_BENCH_COMMIT"
load --workload add-tag --import
load --workload get-tag
