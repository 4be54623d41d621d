#!/usr/bin/env bash
# The test suite: unit, property and integration tests of every crate on the embedded store,
# then the integration tests again on PostgreSQL (TAGCAST_TEST_STORE=postgres). The integration
# tests start the real server on loopback ports with temporary data directories; for the second
# pass, this script installs PostgreSQL 15 from Debian's packages when it is missing (apt-get,
# with sudo unless root) and starts a throwaway cluster in a temporary directory, where each test
# server gets a database of its own; the cluster is stopped and removed at the end. The console's
# browser tests use Debian's chromium through one chromedriver for the whole run, installed when
# missing and started on loopback by scripts/browser.sh (TAGCAST_TEST_WEBDRIVER).
#
#   scripts/test.sh [ARGS]   ARGS go to both passes (e.g. a test name filter); with `-p CRATE`
#                            or `--package CRATE`, only that crate is tested, on the embedded
#                            store, unless it is tagcast (then both passes, on tagcast only)
set -euo pipefail
cd "$(dirname "$0")/.."

if cargo nextest --version > /dev/null 2>&1; then
  run() { cargo nextest run --locked --no-fail-fast "$@"; }
else
  run() { cargo test --locked --no-fail-fast "$@"; }
fi

# Which packages the arguments name: none means the whole workspace.
packages=() rest=()
while (($#)); do
  case $1 in
    -p | --package) packages+=("$2"); shift 2 ;;
    -p* ) packages+=("${1#-p}"); shift ;;
    --package=*) packages+=("${1#--package=}"); shift ;;
    *) rest+=("$1"); shift ;;
  esac
done

TAGCAST_TEST_AXE=$(scripts/browser.sh install)
export TAGCAST_TEST_AXE
browser=$(mktemp -d "${TMPDIR:-/tmp}/tagcast-browser.XXXXXX")
TAGCAST_TEST_WEBDRIVER=http://127.0.0.1:$(scripts/browser.sh start "$browser")
export TAGCAST_TEST_WEBDRIVER
stop_browser() {
  scripts/browser.sh stop "$browser"
  rm -rf "$browser"
}
trap stop_browser EXIT

status=0
echo "== tests on the embedded store"
if ((${#packages[@]})); then
  run "${packages[@]/#/--package=}" "${rest[@]}" || status=$?
else
  run --workspace "${rest[@]}" || status=$?
fi

# The second pass: the integration tests of the tagcast binary, every server on PostgreSQL.
if ((${#packages[@]})) && [[ " ${packages[*]} " != *" tagcast "* ]]; then
  exit "$status"
fi
echo "== integration tests on PostgreSQL"
scripts/postgres.sh install
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tagcast-test.XXXXXX")
chmod 755 "$tmp"
cleanup() {
  scripts/postgres.sh stop "$tmp/pg"
  rm -rf "$tmp"
  stop_browser
}
trap cleanup EXIT
trap 'exit 130' INT TERM
TAGCAST_TEST_PG_PORT=$(scripts/postgres.sh start "$tmp/pg" 25432 scripts/postgres-test.conf)
export TAGCAST_TEST_PG_PORT TAGCAST_TEST_STORE=postgres
echo "PostgreSQL on 127.0.0.1:$TAGCAST_TEST_PG_PORT (data in $tmp/pg)"
run --package tagcast --test integration "${rest[@]}" || status=$?
exit "$status"
