#!/usr/bin/env bash
# A real RabbitMQ for the tests, the demo and the benchmarks, on this machine.
#
#   scripts/rabbitmq.sh ensure    use the broker answering at AMQP__URL (or AMQP__HOST/AMQP__PORT,
#                                 default localhost:5672); else start the installed rabbitmq-server;
#                                 else, as root on Debian/Ubuntu, install it with apt-get and start it
#   scripts/rabbitmq.sh start     start the local broker (if it is not answering) and wait for it
#   scripts/rabbitmq.sh stop      stop the local broker and wait until it is gone
#   scripts/rabbitmq.sh restart   stop, then start
#   scripts/rabbitmq.sh status    say whether a broker answers; exit 0 if it does
#   scripts/rabbitmq.sh management enable the management plugin (HTTP API on 127.0.0.1:15672) on the
#                                 local broker, for the benchmarks (npm run bench); best effort
#   scripts/rabbitmq.sh ctl ARGS  rabbitmqctl ARGS against the local broker (diagnostics ARGS:
#                                 rabbitmq-diagnostics)
#   scripts/rabbitmq.sh url       the broker's AMQP URL
#
# BROKER=3.10|4.0|4.3 picks a version (scripts/brokers.js): 3.10 is Debian 12's own on 5672; 4.0
# and 4.3 are installed once into a Debian chroot (trixie, sid; cached, see scripts/lib/broker.sh)
# and run on ports of their own (AMQP 5772 and 5872, management 15772 and 15872), AMQP__URL then
# ignored. 4.3 runs with every deprecated feature denied.
set -euo pipefail

START_TIMEOUT_S=${RABBITMQ_START_TIMEOUT_S:-90}
# shellcheck source=lib/broker.sh
source "$(dirname "$0")/lib/broker.sh"

say() { broker_say "$@"; }

# Where a 4.x node keeps its data, logs, plugins file and rabbitmq.conf, inside its chroot.
NODE_BASE=/var/lib/rabbitmq/mo-amqp

# Host and port to check: the version's own when BROKER is set; else from AMQP__URL (password
# never printed), else AMQP__HOST/AMQP__PORT.
target() {
  local url=${AMQP__URL:-} re='^amqps?://([^@/]*@)?(\[[^]/]*\]|[^:/?#]*)(:([0-9]+))?'
  if [[ -n "${BROKER:-}" ]]; then
    HOST=localhost
    PORT=$BROKER_AMQP_PORT
  elif [[ -n "$url" && "$url" =~ $re ]]; then
    HOST=${BASH_REMATCH[2]:-localhost}
    HOST=${HOST#[}; HOST=${HOST%]}
    PORT=${BASH_REMATCH[4]:-}
    [[ -n "$PORT" ]] || { [[ "$url" == amqps* ]] && PORT=5671 || PORT=5672; }
  else
    HOST=${AMQP__HOST:-localhost}
    PORT=${AMQP__PORT:-5672}
  fi
}

is_local() {
  case "$HOST" in localhost | 127.* | ::1 | "") return 0 ;; *) return 1 ;; esac
}

# True when an AMQP 0-9-1 server answers the protocol header with a frame (type 1).
answers() {
  local first
  first=$(timeout 3 bash -c '
    exec 3<>"/dev/tcp/$0/$1" || exit 1
    printf "AMQP\x00\x00\x09\x01" >&3
    head -c 1 <&3 | od -An -tx1' "$HOST" "$PORT" 2>/dev/null) || return 1
  [[ "${first// /}" == "01" ]]
}

wait_until() { # wait_until up|down
  local deadline=$((SECONDS + START_TIMEOUT_S))
  while ((SECONDS < deadline)); do
    if [[ $1 == up ]]; then answers && return 0; else answers || return 0; fi
    sleep 0.5
  done
  return 1
}

# A 4.x node's rabbitmq.conf: loopback only, the management API on its own port (used once the
# plugin is enabled), and on 4.3 every deprecated feature that can still be permitted denied.
write_node_config() {
  local conf
  conf="$(broker_path "$NODE_BASE")/rabbitmq.conf"
  mkdir -p "$(dirname "$conf")"
  {
    echo "management.tcp.ip = 127.0.0.1"
    echo "management.tcp.port = $BROKER_MANAGEMENT_PORT"
    if [[ $BROKER_DENY_DEPRECATED == true ]]; then
      local feature
      for feature in amqp_address_v1 amqp_filter_set_bug global_qos queue_master_locator transient_nonexcl_queues; do
        echo "deprecated_features.permit.$feature = false"
      done
    fi
  } >"$conf"
}

start_broker() {
  target
  if answers; then
    say "RabbitMQ answers at $HOST:$PORT"
    return 0
  fi
  if ! is_local; then
    say "No RabbitMQ answers at $HOST:$PORT, and that is not this machine: start it there, or unset AMQP__URL."
    exit 1
  fi
  broker_install
  say "starting rabbitmq-server"
  if [[ -z $BROKER_ROOT ]]; then
    # Debian's packaging may have started it already (systemd); only start when still silent.
    answers || rabbitmq-server -detached
  else
    write_node_config
    broker_start_node "$BROKER_NODE_NAME" "$BROKER_AMQP_PORT" "$BROKER_DIST_PORT" "$NODE_BASE"
  fi
  if ! wait_until up; then
    say "rabbitmq-server did not answer at $HOST:$PORT within ${START_TIMEOUT_S}s; see $(log_dir)"
    exit 1
  fi
  say "RabbitMQ answers at $HOST:$PORT"
}

log_dir() { if [[ -z $BROKER_ROOT ]]; then echo /var/log/rabbitmq/; else broker_path "$NODE_BASE/log/"; fi; }

# rabbitmqctl (or another of its tools) against the local broker; arguments as given.
tool() {
  local name=$1
  shift
  if [[ -z $BROKER_ROOT ]]; then
    "$name" "$@" # Debian's wrappers: they switch to the rabbitmq user themselves
  else
    broker_exec env RABBITMQ_ENABLED_PLUGINS_FILE="$NODE_BASE/enabled_plugins" \
      "/usr/lib/rabbitmq/bin/$name" -n "$BROKER_NODE_NAME@$BROKER_HOST" "$@"
  fi
}

# The benchmarks read per-queue counters (how often each message is written) from the
# management API. Enabled on the running node, no restart; the plugin list is kept by the
# broker, so this is a no-op after the first time. Only for the local installed broker:
# a remote one, or one not started by rabbitmq-server here, is left as it is.
enable_management() {
  is_local || return 0
  [[ -n $BROKER_ROOT ]] || command -v rabbitmq-plugins >/dev/null || return 0
  tool rabbitmq-plugins -q is_enabled rabbitmq_management >/dev/null 2>&1 && return 0
  say "enabling the management plugin (for bench/: per-queue message counts)"
  if ! tool rabbitmq-plugins -q enable rabbitmq_management >/dev/null 2>&1; then
    say "could not enable rabbitmq_management; the benchmarks will not count broker writes"
    return 1
  fi
}

stop_broker() {
  target
  if ! answers; then say "RabbitMQ is not running at $HOST:$PORT"; return 0; fi
  is_local || { say "$HOST is not this machine; not stopping it"; exit 1; }
  say "stopping rabbitmq-server"
  if [[ -z $BROKER_ROOT ]]; then rabbitmqctl stop >/dev/null; else broker_stop_node "$BROKER_NODE_NAME"; fi
  wait_until down || { say "RabbitMQ still answers after ${START_TIMEOUT_S}s"; exit 1; }
  say "stopped"
}

case "${1:-}" in
  ensure | start) start_broker ;;
  management)
    target
    answers || { say "no RabbitMQ at $HOST:$PORT"; exit 1; }
    enable_management
    ;;
  stop) stop_broker ;;
  restart) stop_broker; start_broker ;;
  status)
    target
    if answers; then say "RabbitMQ answers at $HOST:$PORT"; else say "no RabbitMQ at $HOST:$PORT"; exit 1; fi
    ;;
  ctl) shift; tool rabbitmqctl "$@" ;;
  diagnostics) shift; tool rabbitmq-diagnostics "$@" ;;
  url)
    if [[ -n "${BROKER:-}" ]]; then echo "$BROKER_URL"; else echo "${AMQP__URL:-amqp://${AMQP__HOST:-localhost}:${AMQP__PORT:-5672}}"; fi
    ;;
  *)
    sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
