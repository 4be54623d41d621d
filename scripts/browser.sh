#!/usr/bin/env bash
# A headless Chromium for the console's browser tests (issue 11): Debian's `chromium` and
# `chromium-driver`, installed from Debian's packages when missing; chromedriver started on
# loopback on a free port, its log in a directory the caller chooses and removes.
#
#   scripts/browser.sh install            install chromium and chromium-driver if missing, and
#                                         axe-core (the accessibility check) from npm into
#                                         .cache/; prints the path of axe.min.js
#   scripts/browser.sh start DIR [PORT]   chromedriver on 127.0.0.1, on the first free port from
#                                         PORT (default 29515), logging to DIR/chromedriver.log;
#                                         prints the port once it answers
#   scripts/browser.sh stop DIR           stop the chromedriver started in DIR, and its browsers
set -euo pipefail

driver=/usr/bin/chromedriver

# The first port from $1 on which nothing listens.
free_port() {
  local p=$1
  while (: > "/dev/tcp/127.0.0.1/$p") 2> /dev/null; do p=$((p + 1)); done
  echo "$p"
}

# The axe-core release the tests run; npm checks the package against the registry's digest.
axe_version=4.14.1
axe_dir=$(cd "$(dirname "$0")/.." && pwd)/.cache/axe-core-$axe_version

install() {
  install_browser
  install_axe
  echo "$axe_dir/axe.min.js"
}

install_browser() {
  [[ -x $driver && -x /usr/bin/chromium ]] && return
  local sudo=
  [[ $(id -u) == 0 ]] || sudo=sudo
  echo "installing chromium and chromium-driver (Debian packages)" >&2
  $sudo apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q chromium chromium-driver >&2
}

install_axe() {
  [[ -s $axe_dir/axe.min.js ]] && return
  command -v npm > /dev/null || {
    echo "npm is needed to fetch axe-core $axe_version" >&2
    exit 1
  }
  echo "fetching axe-core $axe_version (npm)" >&2
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "axe-core@$axe_version" > /dev/null && tar xzf axe-core-*.tgz)
  mkdir -p "$axe_dir"
  cp "$tmp/package/axe.min.js" "$tmp/package/LICENSE" "$axe_dir/"
  rm -rf "$tmp"
}

start() {
  local dir=$1 port
  [[ -x $driver ]] || {
    echo "chromium-driver is not installed: run scripts/browser.sh install" >&2
    exit 1
  }
  port=$(free_port "${2:-29515}")
  mkdir -p "$dir"
  setsid "$driver" --port="$port" --allowed-ips=127.0.0.1 > "$dir/chromedriver.log" 2>&1 &
  echo $! > "$dir/chromedriver.pid"
  for _ in $(seq 100); do
    if (: > "/dev/tcp/127.0.0.1/$port") 2> /dev/null; then
      echo "$port"
      return
    fi
    sleep 0.1
  done
  cat "$dir/chromedriver.log" >&2
  exit 1
}

stop() {
  [[ -s $1/chromedriver.pid ]] || return 0
  # chromedriver leads its own process group (setsid), with the browsers it started.
  kill -- "-$(cat "$1/chromedriver.pid")" 2> /dev/null || true
  rm -f "$1/chromedriver.pid"
}

case ${1:-} in
  install) install ;;
  start) shift && start "$@" ;;
  stop) shift && stop "$@" ;;
  *) sed -n '2,12p' "$0" >&2 && exit 2 ;;
esac
