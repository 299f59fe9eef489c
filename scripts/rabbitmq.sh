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
set -euo pipefail

START_TIMEOUT_S=${RABBITMQ_START_TIMEOUT_S:-90}

say() { printf '[rabbitmq] %s\n' "$*" >&2; }

# Host and port to check: from AMQP__URL (password never printed), else AMQP__HOST/AMQP__PORT.
target() {
  local url=${AMQP__URL:-} re='^amqps?://([^@/]*@)?(\[[^]/]*\]|[^:/?#]*)(:([0-9]+))?'
  if [[ -n "$url" && "$url" =~ $re ]]; then
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

install_broker() {
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
    say "No RabbitMQ answers at $HOST:$PORT and rabbitmq-server is not installed."
    say "Install it (Debian/Ubuntu: sudo apt-get install rabbitmq-server, then sudo rabbitmq-server -detached),"
    say "or point AMQP__URL at a running broker, then run this again."
    exit 1
  fi
  say "installing rabbitmq-server with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends rabbitmq-server >/dev/null
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
  command -v rabbitmq-server >/dev/null || install_broker
  say "starting rabbitmq-server"
  # Debian's packaging may have started it already (systemd); only start when still silent.
  answers || rabbitmq-server -detached
  if ! wait_until up; then
    say "rabbitmq-server did not answer at $HOST:$PORT within ${START_TIMEOUT_S}s; see /var/log/rabbitmq/"
    exit 1
  fi
  say "RabbitMQ answers at $HOST:$PORT"
}

# The benchmarks read per-queue counters (how often each message is written) from the
# management API. Enabled on the running node, no restart; the plugin list is kept by the
# broker, so this is a no-op after the first time. Only for the local installed broker:
# a remote one, or one not started by rabbitmq-server here, is left as it is.
enable_management() {
  is_local || return 0
  command -v rabbitmq-plugins >/dev/null || return 0
  rabbitmq-plugins -q is_enabled rabbitmq_management >/dev/null 2>&1 && return 0
  say "enabling the management plugin (for bench/: per-queue message counts)"
  if ! rabbitmq-plugins -q enable rabbitmq_management >/dev/null 2>&1; then
    say "could not enable rabbitmq_management; the benchmarks will not count broker writes"
    return 1
  fi
}

stop_broker() {
  target
  if ! answers; then say "RabbitMQ is not running at $HOST:$PORT"; return 0; fi
  is_local || { say "$HOST is not this machine; not stopping it"; exit 1; }
  say "stopping rabbitmq-server"
  rabbitmqctl stop >/dev/null
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
  *)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
