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
# user's Erlang cookie. Only loopback is used.
set -euo pipefail

BASE=${MO_CLUSTER_DIR:-/tmp/mo-amqp-cluster}
HOST=$(hostname -s)
NODES=(1 2 3)

say() { printf '[cluster] %s\n' "$*" >&2; }
node_name() { echo "mo-cluster-$1@$HOST"; }
amqp_port() { echo $((5680 + $1)); }

as_rabbitmq() {
  if [[ $(id -u) -eq 0 ]]; then
    su rabbitmq -s /bin/sh -c "$*"
  else
    sh -c "$*"
  fi
}

# The node's Erlang VM: its name is only in its environment, not its command line.
pid_of() {
  local p
  for p in $(pgrep -f beam.smp); do
    # (a process may end between pgrep and the read: its environment is then gone)
    { tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null | grep -qx "RABBITMQ_NODENAME=$(node_name "$1")" && echo "$p"
  done
  return 0
}

ctl() { # ctl N args...
  local n=$1
  shift
  as_rabbitmq "HOME=/var/lib/rabbitmq /usr/lib/rabbitmq/bin/rabbitmqctl -n $(node_name "$n") $*"
}

start_node() {
  local n=$1 dir="$BASE/node$1"
  mkdir -p "$dir/mnesia" "$dir/log"
  [[ $(id -u) -eq 0 ]] && chown -R rabbitmq:rabbitmq "$BASE"
  # su leaves a node 1,024 open files, of which RabbitMQ 3.10 keeps 927 handles: about 180 quorum
  # queues led by one node (two delay agents' queues) use them all, and it then accepts no connection.
  # Up to the hard limit, as the Debian service's 65,536.
  as_rabbitmq "ulimit -n \$(ulimit -Hn) 2>/dev/null; cd /var/lib/rabbitmq && HOME=/var/lib/rabbitmq \
    RABBITMQ_NODENAME=$(node_name "$n") \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT=$(amqp_port "$n") \
    RABBITMQ_DIST_PORT=$((25680 + n)) \
    RABBITMQ_MNESIA_BASE=$dir/mnesia \
    RABBITMQ_LOG_BASE=$dir/log \
    RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins \
    RABBITMQ_CONFIG_FILE=$dir/rabbitmq \
    /usr/lib/rabbitmq/bin/rabbitmq-server -detached"
}

wait_node() { # the node registers with epmd a moment after -detached returns
  local deadline=$((SECONDS + 90))
  until ctl "$1" await_startup --timeout 5 >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { say "node $1 did not start; see $BASE/node$1/log"; exit 1; }
    sleep 1
  done
}

urls() {
  local out=()
  for n in "${NODES[@]}"; do out+=("amqp://guest:guest@127.0.0.1:$(amqp_port "$n")"); done
  (IFS=,; echo "${out[*]}")
}

case "${1:-}" in
  start)
    command -v rabbitmq-server >/dev/null || { say "rabbitmq-server is not installed: run scripts/rabbitmq.sh ensure"; exit 1; }
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
    for n in "${NODES[@]}"; do
      ctl "$n" stop >/dev/null 2>&1 || true
      pid=$(pid_of "$n")
      [[ -z "$pid" ]] || kill -9 $pid 2>/dev/null || true
    done
    rm -rf "$BASE"
    say "stopped, data deleted"
    ;;
  kill-node)
    n=${2:?which node: 1, 2 or 3}
    pid=$(pid_of "$n")
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
    echo "${leader#mo-cluster-}" | cut -d@ -f1
    ;;
  *)
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
