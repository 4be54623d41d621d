#!/usr/bin/env bash
# Device notifications per second (issue 10): one push to N devices per provider (APNs, FCM,
# Web Push), each provider on a fresh tagcast data directory, against the strict local fakes
# of tagcast-fakes running in the benchmark's process on the same machine; next to a baseline
# in the same run, the same fake sent the same notifications by a minimal HTTP/2 (and HTTP/1.1)
# client doing nothing else. Prints notifications/s with and without the notifier's 1 s grace
# period, the ratio to the baseline, the CPU of tagcast, of the fake and of the baseline's
# client, and the registration time (not counted). Builds release, runs
# `tagcast-bench devices`, removes its temporary folder. See bench/README.md.
#
#   bench/devices.sh [--devices N] [--per-account K] [--rounds R] [--providers apns,fcm,webpush]
#                    # N = 100000 per provider, K = 1 device per account, R = 3 rounds of a
#                    # push through tagcast then the baseline (the fastest of each is reported)
#   bench/devices.sh --smoke        # 300 devices per provider, 2 rounds: under a minute once built
#
# The report is also written to target/bench-logs/devices-N.md. Fails (non-zero, FAILED, no
# report) on any error: a device not notified or notified twice, a request the fake refused,
# statistics that differ from what the fake took, a step that fails.
set -euo pipefail
cd "$(dirname "$0")/.."

devices=100000 per_account=1 rounds=3 providers=apns,fcm,webpush smoke=
while (($#)); do
  case $1 in
    --devices) devices=$2; shift 2 ;;
    --per-account) per_account=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --providers) providers=$2; shift 2 ;;
    --smoke) smoke=1; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [[ -n $smoke ]]; then
  devices=300 rounds=2
fi

began=$SECONDS
# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_commit
echo "== machine"
echo "$(bench_machine); devices=$devices per provider, $per_account per account, $rounds rounds; commit $TAGCAST_BENCH_COMMIT"
echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
# The baseline's HTTP/1.1 form holds one connection per request in flight.
ulimit -Sn "$(ulimit -Hn)"

echo "== build"
cargo build --release --locked -q -p tagcast -p tagcast-bench
bin=${CARGO_TARGET_DIR:-target}/release

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tagcast-devices-bench.XXXXXX")
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  rm -rf "$tmp"
  if ((status != 0)); then echo "bench/devices.sh: FAILED (exit $status)" >&2; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p target/bench-logs
report=target/bench-logs/devices-$devices.md
# A failed run leaves no report, not even an earlier one.
rm -f "$report"
"$bin/tagcast-bench" devices \
  --devices "$devices" --per-account "$per_account" --rounds "$rounds" --providers "$providers" \
  --tagcast-bin "$bin/tagcast" --work "$tmp" --out "$report"

echo "load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "bench/devices.sh: done in $((SECONDS - began)) s"
