#!/usr/bin/env bash
# A throwaway PostgreSQL 15 on loopback, for the benchmarks and the test suite: installed from
# Debian's packages when missing, its data in a directory the caller chooses and removes.
#
#   scripts/postgres.sh install                   install postgresql-15 if it is missing
#   scripts/postgres.sh start DIR [PORT] [CONF]   a new cluster in DIR (created, must be new) on
#                                                 127.0.0.1, on the first free port from PORT
#                                                 (default 25432), with the postgresql.conf lines
#                                                 of file CONF added; prints the port it took
#   scripts/postgres.sh ensure DIR [PORT] [CONF]  the cluster of DIR, started as `start` does
#                                                 (DIR emptied first) unless it already runs;
#                                                 prints its port. Callers at once (under a lock,
#                                                 DIR.lock) share one cluster
#   scripts/postgres.sh stop DIR                  stop the cluster of DIR (fast shutdown)
#   scripts/postgres.sh crash DIR                 stop it as a crash would (immediate shutdown:
#                                                 no checkpoint, recovery from the WAL at start)
#   scripts/postgres.sh resume DIR                start the stopped cluster of DIR again
#
# As root, PostgreSQL's own commands run as the `postgres` user, which refuses to run as root.
set -euo pipefail

pg_bin=/usr/lib/postgresql/15/bin

as_pg() {
  if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# The first port from $1 on which nothing listens.
free_port() {
  local p=$1
  while (: > "/dev/tcp/127.0.0.1/$p") 2> /dev/null; do p=$((p + 1)); done
  echo "$p"
}

install() {
  [[ -x $pg_bin/postgres ]] && return
  local sudo=
  [[ $(id -u) == 0 ]] || sudo=sudo
  echo "installing postgresql-15 (Debian packages)" >&2
  $sudo apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q postgresql-15 >&2
}

start() {
  local dir=$1 port conf=${3:-}
  port=$(free_port "${2:-25432}")
  mkdir -p "$dir"
  [[ $(id -u) == 0 ]] && chown postgres: "$dir"
  as_pg "$pg_bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale \
    > "$dir/initdb.log"
  {
    echo "listen_addresses = '127.0.0.1'"
    echo "port = $port"
    echo "unix_socket_directories = '$dir'"
    [[ -z $conf ]] || cat "$conf"
  } | as_pg tee -a "$dir/data/postgresql.conf" > /dev/null
  if ! as_pg "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 120 start > /dev/null; then
    cat "$dir/server.log" >&2
    exit 1
  fi
  echo "$port"
}

stop() {
  as_pg "$pg_bin/pg_ctl" -D "$1/data" -m fast -w stop > /dev/null 2>&1 || true
}

crash() {
  as_pg "$pg_bin/pg_ctl" -D "$1/data" -m immediate -w stop > /dev/null
}

resume() {
  if ! as_pg "$pg_bin/pg_ctl" -D "$1/data" -l "$1/server.log" -w -t 120 start > /dev/null; then
    cat "$1/server.log" >&2
    exit 1
  fi
}

ensure() {
  local dir=$1 port
  [[ -x $pg_bin/postgres ]] || {
    echo "postgresql-15 is not installed: run scripts/postgres.sh install" >&2
    exit 1
  }
  mkdir -p "$(dirname "$dir")"
  exec 9>> "$dir.lock"
  flock 9
  if [[ -s $dir/port ]] && as_pg "$pg_bin/pg_ctl" -D "$dir/data" status > /dev/null 2>&1; then
    cat "$dir/port"
    return
  fi
  stop "$dir"
  rm -rf "$dir"
  # The server must not inherit the lock (fd 9): it would hold it as long as it runs.
  port=$(start "$dir" "${2:-25432}" "${3:-}" 9>&-)
  echo "$port" > "$dir/port"
  echo "$port"
}

case ${1:-} in
  install) install ;;
  start) shift && start "$@" ;;
  ensure) shift && ensure "$@" ;;
  stop) shift && stop "$@" ;;
  crash) shift && crash "$@" ;;
  resume) shift && resume "$@" ;;
  *) sed -n '2,19p' "$0" >&2 && exit 2 ;;
esac
