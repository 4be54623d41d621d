# Shared by the benchmark scripts (sourced, not run): the commit stamp, the machine line, the
# durable PostgreSQL settings every PostgreSQL measurement uses, a disk probe, and the start of a
# run on a throwaway PostgreSQL.

# The commit every report is stamped with, read before the build ("-dirty": the tree has changes).
bench_commit() {
  TAGCAST_BENCH_COMMIT=$(git rev-parse --short HEAD 2> /dev/null || echo unknown)
  [[ -z $(git status --porcelain 2> /dev/null) ]] || TAGCAST_BENCH_COMMIT+=-dirty
  export TAGCAST_BENCH_COMMIT
}

# "2 cores, <model>, 23.4 GiB, Linux 6.1"
bench_machine() {
  echo "$(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)," \
    "$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo), $(uname -sr)"
}

# The postgresql.conf lines of every PostgreSQL the benchmarks measure (for scripts/postgres.sh
# start): fsync and synchronous_commit on; wal_level minimal, so a COPY into a table created in
# the same transaction skips the WAL; shared_buffers a quarter of the RAM.
pg_bench_conf() {
  local shared_buffers
  shared_buffers=$(awk '/MemTotal/ {printf "%dMB", $2 / 4096}' /proc/meminfo)
  cat << CONF
max_connections = 200
shared_buffers = $shared_buffers
fsync = on
synchronous_commit = on
wal_level = minimal
max_wal_senders = 0
max_wal_size = 16GB
checkpoint_timeout = 30min
maintenance_work_mem = 1GB
work_mem = 64MB
effective_cache_size = 12GB
random_page_cost = 1.1
CONF
}

# Microseconds of one synchronous 8 KiB write in directory $1 (1000 of them, dd oflag=dsync):
# what a durable write costs on this disk.
fsync_probe_us() {
  local secs
  secs=$(dd if=/dev/zero of="$1/fsync-probe" bs=8k count=1000 oflag=dsync 2>&1 |
    sed -n 's/.* copied, \([0-9.e-]*\) s.*/\1/p')
  rm -f "$1/fsync-probe"
  awk -v s="$secs" 'BEGIN {printf "%.0f", s * 1000}'
}

# For a script ($1, e.g. "bench/store.sh") whose run is named $2: builds release, installs
# PostgreSQL 15 if missing and starts a throwaway cluster on loopback with the durable settings
# and pg_stat_statements (on for every PostgreSQL run alike), in a new temporary folder. Both are
# stopped and removed when the script exits, which then prints "$1: FAILED" if it failed. Sets
# `tmp` (the folder), `probe` (fsync_probe_us there) and `pg_port`.
bench_postgres_run() {
  bench_script=$1
  echo "== build"
  cargo build --release --locked -q -p tagcast -p tagcast-bench -p tagcast-loadgen

  echo "== PostgreSQL"
  scripts/postgres.sh install
  local pg_version
  pg_version=$(/usr/lib/postgresql/15/bin/postgres --version | awk '{print $3}')
  [[ ${pg_version%%.*} == 15 ]] || { echo "PostgreSQL 15 expected, found $pg_version" >&2; exit 1; }

  tmp=$(mktemp -d "${TMPDIR:-/tmp}/tagcast-$2-bench.XXXXXX")
  chmod 755 "$tmp"
  bench_pg_data=
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM

  probe=$(fsync_probe_us "$tmp")
  echo "fsync probe: 1000 synchronous 8 KiB writes (dd oflag=dsync) in ${TMPDIR:-/tmp}: $probe us each"
  {
    pg_bench_conf
    echo "shared_preload_libraries = 'pg_stat_statements'"
  } > "$tmp/pg.conf"
  bench_pg_data=$tmp/pg
  pg_port=$(scripts/postgres.sh start "$bench_pg_data" 25432 "$tmp/pg.conf")
  echo "PostgreSQL $pg_version on 127.0.0.1:$pg_port (data in $bench_pg_data)"
}

# The EXIT trap of bench_postgres_run. tagcast-bench kills the servers it started when it exits
# (also on failure).
bench_cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [[ -n $bench_pg_data ]]; then
    scripts/postgres.sh stop "$bench_pg_data"
  fi
  rm -rf "$tmp"
  if ((status != 0)); then echo "$bench_script: FAILED (exit $status)" >&2; fi
  exit "$status"
}
