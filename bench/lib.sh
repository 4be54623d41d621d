# Shared by the benchmark scripts (sourced, not run): the commit stamp, the machine line, the
# durable PostgreSQL settings every PostgreSQL measurement uses, and a disk probe.

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
