#!/usr/bin/env bash
# Several tagcast nodes on one PostgreSQL, on loopback, for trying a cluster out: a throwaway
# PostgreSQL (scripts/postgres.sh), one config file, and N nodes listening on 127.0.0.1:8081,
# 8082, ... (node ids node1, node2, ...), each logging to its own file.
#
#   scripts/cluster.sh start [N]   build tagcast (release), start PostgreSQL and N nodes
#                                  (default 3); prints each node's URL and a curl to try
#   scripts/cluster.sh status      each node's view of the cluster (GET /cluster)
#   scripts/cluster.sh stop        stop the nodes and PostgreSQL, and remove the state
#
# The state (PostgreSQL's data, the config, the logs, the pids) is in $TAGCAST_CLUSTER_DIR
# (default /tmp/tagcast-cluster).
set -euo pipefail
cd "$(dirname "$0")/.."

dir=${TAGCAST_CLUSTER_DIR:-/tmp/tagcast-cluster}
first_port=8081

start() {
  local n=${1:-3}
  [[ $n =~ ^[1-9][0-9]?$ ]] || { echo "N must be 1 to 99, not '$n'" >&2; exit 2; }
  if [[ -e $dir ]]; then
    echo "$dir exists: a cluster may be running (scripts/cluster.sh stop first)" >&2
    exit 1
  fi
  cargo build --release --locked -q -p tagcast
  scripts/postgres.sh install
  mkdir -p "$dir"
  chmod 755 "$dir"
  local pg_port key
  pg_port=$(scripts/postgres.sh start "$dir/pg" 35432)
  key=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  cat > "$dir/tagcast.toml" <<EOF
[store]
url = "postgres://postgres@127.0.0.1:$pg_port/postgres"

[cluster]
node_gone_after_secs = 5

[[apps]]
sdkappid = 1400000001
secret_key = "$key"
admins = ["administrator"]
EOF
  local i port
  for ((i = 1; i <= n; i++)); do
    port=$((first_port + i - 1))
    target/release/tagcast serve --config "$dir/tagcast.toml" --listen "127.0.0.1:$port" \
      --node-id "node$i" > "$dir/node$i.log" 2>&1 &
    echo $! > "$dir/node$i.pid"
  done
  for ((i = 1; i <= n; i++)); do
    port=$((first_port + i - 1))
    for _ in $(seq 100); do
      curl -sf "http://127.0.0.1:$port/healthz" > /dev/null && break
      sleep 0.1
    done
    curl -sf "http://127.0.0.1:$port/healthz" > /dev/null \
      || { echo "node$i did not start: see $dir/node$i.log" >&2; exit 1; }
    echo "node$i: http://127.0.0.1:$port (log $dir/node$i.log)"
  done
  local sig
  sig=$(TAGCAST_KEY=$key target/release/tagcast usersig --sdkappid 1400000001 \
    --identifier administrator)
  echo "PostgreSQL on 127.0.0.1:$pg_port; app 1400000001, key $key"
  echo "try: tag on node1, count on node$n:"
  local query="sdkappid=1400000001&identifier=administrator&usersig=$sig&random=1&contenttype=json"
  echo "  curl -s 'http://127.0.0.1:$first_port/v4/im_open_login_svc/multiaccount_import?$query'" \
    "-d '{\"Accounts\":[\"u1\"]}'"
  echo "  curl -s 'http://127.0.0.1:$first_port/v4/timpush/add_tag?$query'" \
    "-d '{\"UserTags\":[{\"To_Account\":\"u1\",\"Tags\":[\"vip\"]}]}'"
  echo "  curl -s 'http://127.0.0.1:$((first_port + n - 1))/v4/tagcast/audience_count?$query'" \
    "-d '{\"Audience\":{\"Tag\":\"vip\"}}'"
  echo "then listen as u1 on node$n, and push to the vips on node1:"
  echo "  TAGCAST_KEY=$key target/release/tagcast listen" \
    "--url http://127.0.0.1:$((first_port + n - 1)) --sdkappid 1400000001 --identifier u1"
  echo "  curl -s 'http://127.0.0.1:$first_port/v4/timpush/push?$query'" \
    "-d '{\"MsgRandom\":1,\"Condition\":{\"TagsAnd\":[\"vip\"]},\"MsgBody\":" \
    "[{\"MsgType\":\"TIMTextElem\",\"MsgContent\":{\"Text\":\"hi\"}}]}'"
}

status() {
  local pid node port
  compgen -G "$dir/node*.pid" > /dev/null || { echo "no cluster in $dir" >&2; exit 1; }
  for pid in "$dir"/node*.pid; do
    node=$(basename "$pid" .pid)
    port=$((first_port + ${node#node} - 1))
    echo "$node (http://127.0.0.1:$port): $(curl -s "http://127.0.0.1:$port/cluster" || echo down)"
  done
}

stop() {
  local pid
  for pid in "$dir"/node*.pid; do
    [[ -e $pid ]] || continue
    kill "$(cat "$pid")" 2> /dev/null || true
  done
  for pid in "$dir"/node*.pid; do
    [[ -e $pid ]] || continue
    while kill -0 "$(cat "$pid")" 2> /dev/null; do sleep 0.1; done
  done
  [[ -d $dir/pg ]] && scripts/postgres.sh stop "$dir/pg"
  rm -rf "$dir"
  echo "stopped; $dir removed"
}

case ${1:-} in
  start) shift && start "$@" ;;
  status) status ;;
  stop) stop ;;
  *) sed -n '2,13p' "$0" >&2 && exit 2 ;;
esac
