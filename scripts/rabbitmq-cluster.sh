#!/usr/bin/env bash
# A local three-node RabbitMQ cluster on loopback, for fault tests, beside the
# single broker of scripts/rabbitmq.sh (which must be installed: run its ensure first).
#
#   scripts/rabbitmq-cluster.sh start        start nodes 1-3 (AMQP ports 5681-5683) and join them
#   scripts/rabbitmq-cluster.sh stop         stop every node and delete their data
#   scripts/rabbitmq-cluster.sh kill-node N  kill node N at once (SIGKILL), as a crash would
#   scripts/rabbitmq-cluster.sh start-node N start node N again (it rejoins with its data)
#   scripts/rabbitmq-cluster.sh urls         the AMQP__URL of the cluster (comma-separated)
#   scripts/rabbitmq-cluster.sh leader Q     the node number leading quorum queue Q
#
# Each node has its own node name (mo-cluster-N@host), ports and data directory
# under $MO_CLUSTER_DIR (default /tmp/mo-amqp-cluster); all share the rabbitmq
# user's Erlang cookie. Only loopback is used. With BROKER=4.0 or 4.3 the nodes
# are that version's (scripts/brokers.js: mo43-cluster-N, AMQP ports 5881-5883
# for 4.3), run from its chroot, with MO_CLUSTER_DIR inside it.
set -euo pipefail

# shellcheck source=lib/broker.sh
source "$(dirname "$0")/lib/broker.sh"
BASE=${MO_CLUSTER_DIR:-/tmp/mo-amqp-cluster}
NODES=(1 2 3)

say() { printf '[cluster %s] %s\n' "$BROKER_VERSION" "$*" >&2; }
node_name() { echo "$BROKER_CLUSTER_NODE_PREFIX$1"; }
amqp_port() { echo $((BROKER_CLUSTER_AMQP_PORT_BASE + $1)); }
ctl() { # ctl N args...
  local n=$1
  shift
  broker_tool rabbitmqctl "$(node_name "$n")" "$@"
}

start_node() {
  broker_start_node "$(node_name "$1")" "$(amqp_port "$1")" $((BROKER_CLUSTER_DIST_PORT_BASE + $1)) "$BASE/node$1"
}

wait_node() {
  broker_wait_node "$(node_name "$1")" || { say "node $1 did not start; see $(broker_path "$BASE/node$1/log")"; exit 1; }
}

urls() {
  local out=()
  for n in "${NODES[@]}"; do out+=("amqp://guest:guest@127.0.0.1:$(amqp_port "$n")"); done
  (IFS=,; echo "${out[*]}")
}

case "${1:-}" in
  start)
    broker_install
    if ctl 1 await_startup --timeout 1 >/dev/null 2>&1; then say "already running: $(urls)"; exit 0; fi
    for n in "${NODES[@]}"; do start_node "$n"; done
    for n in "${NODES[@]}"; do wait_node "$n"; done
    # guest may log in from loopback only, which is all this cluster uses.
    for n in 2 3; do
      ctl "$n" stop_app >/dev/null
      ctl "$n" join_cluster "$(node_name 1)" >/dev/null
      ctl "$n" start_app >/dev/null
    done
    say "three nodes running: $(urls)"
    ;;
  stop)
    for n in "${NODES[@]}"; do broker_stop_node "$(node_name "$n")"; done
    rm -rf "$(broker_path "$BASE")"
    say "stopped, data deleted"
    ;;
  kill-node)
    n=${2:?which node: 1, 2 or 3}
    pid=$(broker_pid_of "$(node_name "$n")")
    [[ -n "$pid" ]] || { say "node $n is not running"; exit 1; }
    kill -9 $pid
    say "killed node $n (pid $pid)"
    ;;
  start-node)
    n=${2:?which node: 1, 2 or 3}
    start_node "$n"
    wait_node "$n"
    say "node $n running again"
    ;;
  urls)
    urls
    ;;
  leader)
    queue=${2:?which queue}
    leader=$(ctl 1 list_queues -q --no-table-headers name leader 2>/dev/null | awk -v q="$queue" '$1 == q { print $2 }')
    [[ -n "$leader" ]] || { say "no quorum queue $queue"; exit 1; }
    leader=${leader%@*}
    echo "${leader#"$BROKER_CLUSTER_NODE_PREFIX"}"
    ;;
  *)
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
