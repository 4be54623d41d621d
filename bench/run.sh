#!/usr/bin/env bash
# tagcast against Redis 7 and PostgreSQL 15 on the same synthetic app, in one command (issue 4):
# builds release, generates the app once (cached in target/bench-data/N), installs Redis and
# PostgreSQL from Debian packages when missing, starts them on loopback with their data in a
# temporary folder, runs `tagcast-bench compare` (which loads the same accounts into each and runs
# the same workloads on all three, one system at a time), prints one table, then stops what it
# started and removes the temporary folder. See bench/README.md.
#
#   bench/run.sh [--accounts N] [--seconds S] [--concurrency C]   # N = 1000000 by default
#   bench/run.sh --accounts 10000000                              # 10M (first generation: minutes)
#   bench/run.sh --smoke                                          # 2000 accounts, short runs
#
# Other arguments are passed to `tagcast-bench compare` (see its --help). The report is also
# written to target/bench-logs/compare-N.md. Fails (non-zero) on any error or count mismatch.
set -euo pipefail
cd "$(dirname "$0")/.."

accounts=1000000 seconds=10 concurrency=64 smoke= extra=()
while (($#)); do
  case $1 in
    --accounts) accounts=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --smoke) smoke=1; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) extra+=("$1"); shift ;;
  esac
done
if [[ -n $smoke ]]; then
  accounts=2000 seconds=1 concurrency=8
  extra=(--runs 20 --baseline-runs 5 --min-runs 3 --budget-secs 1 "${extra[@]}")
fi

began=$SECONDS
pg_bin=/usr/lib/postgresql/15/bin
sudo=
[[ $(id -u) == 0 ]] || sudo=sudo

# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_commit
echo "== machine"
echo "$(bench_machine); accounts=$accounts; commit $TAGCAST_BENCH_COMMIT"

echo "== build"
cargo build --release --locked -q -p tagcast -p tagcast-bench -p tagcast-loadgen
bench=./target/release/tagcast-bench
data=target/bench-data/$accounts

echo "== gen"
"$bench" gen --accounts "$accounts" --data "$data"

echo "== Redis and PostgreSQL"
if ! command -v redis-server > /dev/null; then
  echo "installing redis-server (Debian packages)"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q redis-server
fi
scripts/postgres.sh install
redis_version=$(redis-server --version | sed -n 's/.* v=\([0-9.]*\).*/\1/p')
pg_version=$("$pg_bin/postgres" --version | awk '{print $3}')
echo "Redis $redis_version, PostgreSQL $pg_version"
[[ ${redis_version%%.*} -ge 7 ]] || { echo "Redis 7 or later needed (SINTERCARD)" >&2; exit 1; }
[[ ${pg_version%%.*} == 15 ]] || { echo "PostgreSQL 15 expected, found $pg_version" >&2; exit 1; }

# The first port from $1 on that nothing listens on.
free_port() {
  local p=$1
  while (: > "/dev/tcp/127.0.0.1/$p") 2> /dev/null; do p=$((p + 1)); done
  echo "$p"
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tagcast-bench.XXXXXX")
chmod 755 "$tmp"
redis_pid= pg_data=

# What a durable write costs on this disk: every system's acknowledged writes wait for such syncs.
echo "fsync probe: 1000 synchronous 8 KiB writes (dd oflag=dsync) in ${TMPDIR:-/tmp}: $(fsync_probe_us "$tmp") us each"
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [[ -n $redis_pid ]]; then
    kill "$redis_pid" 2> /dev/null || true
    wait "$redis_pid" 2> /dev/null || true
  fi
  if [[ -n $pg_data ]]; then
    scripts/postgres.sh stop "$pg_data"
  fi
  rm -rf "$tmp"
  if ((status != 0)); then echo "bench/run.sh: FAILED (exit $status)" >&2; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Redis: AOF on (appendfsync everysec; the benchmark also switches to always), no RDB snapshots,
# no automatic AOF rewrite during the load.
redis_port=$(free_port 26379)
mkdir -p "$tmp/redis"
cat > "$tmp/redis/redis.conf" << CONF
bind 127.0.0.1
port $redis_port
protected-mode yes
daemonize no
dir $tmp/redis
logfile $tmp/redis/redis.log
save ""
appendonly yes
appendfsync everysec
appenddirname "appendonly"
auto-aof-rewrite-percentage 0
maxclients 1000
CONF
redis-server "$tmp/redis/redis.conf" &
redis_pid=$!
for _ in $(seq 100); do
  [[ $(redis-cli -p "$redis_port" ping 2> /dev/null) == PONG ]] && break
  kill -0 "$redis_pid" 2> /dev/null || { cat "$tmp/redis/redis.log" >&2; exit 1; }
  sleep 0.1
done
[[ $(redis-cli -p "$redis_port" ping) == PONG ]]
echo "Redis on 127.0.0.1:$redis_port (pid $redis_pid, data in $tmp/redis)"

# PostgreSQL: the benchmarks' durable settings (bench/lib.sh).
pg_bench_conf > "$tmp/pg.conf"
shared_buffers=$(sed -n 's/^shared_buffers = //p' "$tmp/pg.conf")
pg_data=$tmp/pg
pg_port=$(scripts/postgres.sh start "$pg_data" 25432 "$tmp/pg.conf")
"$pg_bin/psql" -q -h 127.0.0.1 -p "$pg_port" -U postgres -c 'CREATE DATABASE tagcast_bench'
echo "PostgreSQL on 127.0.0.1:$pg_port (shared_buffers $shared_buffers, data in $tmp/pg)"

mkdir -p target/bench-logs
"$bench" compare --accounts "$accounts" --data "$data" \
  --redis "redis://127.0.0.1:$redis_port" \
  --postgres "host=127.0.0.1 port=$pg_port user=postgres dbname=tagcast_bench" \
  --concurrency "$concurrency" --seconds "$seconds" \
  --work "$tmp/tagcast" --out "target/bench-logs/compare-$accounts.md" \
  "${extra[@]}"

echo "bench/run.sh: done in $((SECONDS - began)) s"
