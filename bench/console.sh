#!/usr/bin/env bash
# The web console's audience builder (issue 11), in Debian's chromium over WebDriver, at N
# accounts of the synthetic app: the time from a keystroke in the builder to the updated exact
# count on the page, every count checked against audience_count; against, from the same page in
# the same run, the REST API's audience_count of the same expression fetched directly (the
# baseline) and the console's api/reach fetched directly. Builds release, installs chromium and
# chromium-driver when missing (scripts/browser.sh), runs `tagcast-bench console`.
#
#   bench/console.sh [--accounts N] [--samples S]   # N = 1000000, S = 40 keystrokes
#   bench/console.sh --smoke                        # 2000 accounts, 10 keystrokes
#
# The report is also written to target/bench-logs/console-N.md. Fails (non-zero, FAILED, no
# report) when a count shown differs from audience_count, or any step fails.
set -euo pipefail
cd "$(dirname "$0")/.."

accounts=1000000 samples=40
while (($#)); do
  case $1 in
    --accounts) accounts=$2; shift 2 ;;
    --samples) samples=$2; shift 2 ;;
    --smoke) accounts=2000 samples=10; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_commit
echo "== machine"
echo "$(bench_machine); $accounts accounts, $samples keystrokes; commit $TAGCAST_BENCH_COMMIT"

echo "== build"
cargo build --release --locked -q -p tagcast -p tagcast-bench
bin=${CARGO_TARGET_DIR:-target}/release
scripts/browser.sh install > /dev/null

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tagcast-console-bench.XXXXXX")
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  scripts/browser.sh stop "$tmp"
  rm -rf "$tmp"
  if ((status != 0)); then echo "bench/console.sh: FAILED (exit $status)" >&2; fi
  exit "$status"
}
trap cleanup EXIT
port=$(scripts/browser.sh start "$tmp")

echo "== console"
mkdir -p target/bench-logs
report=target/bench-logs/console-$accounts.md
"$bin/tagcast-bench" console --accounts "$accounts" --samples "$samples" \
  --webdriver "http://127.0.0.1:$port" --tagcast-bin "$bin/tagcast" | tee "$tmp/report"
mv "$tmp/report" "$report"
echo "report: $report"
