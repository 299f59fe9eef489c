# Sourced by scripts/rabbitmq*.sh: the RabbitMQ version BROKER names (scripts/brokers.js), where
# its programs are, and how to run them. Defines BROKER_* (ports, node names), BROKER_ROOT (the
# chroot of a 4.x version, empty for Debian 12's own 3.10) and the functions below.
#
# MO_AMQP_CACHE (default /var/cache/nestjs-mo-amqp as root, else ~/.cache/nestjs-mo-amqp) keeps
# the chroots between runs; MO_DEBIAN_MIRROR (default the first Debian mirror of this machine's
# apt sources, else deb.debian.org) is where they come from.

_broker_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
eval "$(node "$_broker_dir/brokers.js" shell "${BROKER:-}")" || exit 2

if [[ $(id -u) -eq 0 ]]; then
  BROKER_CACHE=${MO_AMQP_CACHE:-/var/cache/nestjs-mo-amqp}
else
  BROKER_CACHE=${MO_AMQP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nestjs-mo-amqp}
fi
BROKER_HOST=$(hostname -s)
if [[ $BROKER_CHROOT == true ]]; then BROKER_ROOT="$BROKER_CACHE/rabbitmq-$BROKER_VERSION"; else BROKER_ROOT=; fi

broker_say() { printf '[rabbitmq %s] %s\n' "$BROKER_VERSION" "$*" >&2; }

# The host path of a path inside the broker's root.
broker_path() { printf '%s%s\n' "$BROKER_ROOT" "$1"; }

# Runs a command as the rabbitmq user, in the broker's root, with HOME and the version's epmd
# port; its arguments stay as given (no shell in between). In a chroot, /proc and /dev are mounted
# in a mount namespace of the command's own: nothing is left mounted on this machine, and a
# node started -detached keeps its namespace until it stops.
broker_exec() {
  local env=(env HOME=/var/lib/rabbitmq ERL_EPMD_PORT="$BROKER_EPMD_PORT")
  if [[ -z $BROKER_ROOT ]]; then
    if [[ $(id -u) -eq 0 ]]; then runuser -u rabbitmq -- "${env[@]}" "$@"; else "${env[@]}" "$@"; fi
    return
  fi
  [[ $(id -u) -eq 0 ]] || { broker_say "RabbitMQ $BROKER_VERSION runs from a Debian chroot, which needs root"; return 1; }
  # shellcheck disable=SC2016
  unshare --mount --propagation private -- /bin/sh -c '
    root=$1; shift
    mount -t proc proc "$root/proc" && mount --rbind /dev "$root/dev" || exit 1
    exec chroot --userspec=rabbitmq:rabbitmq "$root" "$@"' sh "$BROKER_ROOT" "${env[@]}" "$@"
}

# rabbitmqctl (or rabbitmq-diagnostics, rabbitmq-plugins: $1) against node $2 (a name without @host).
broker_tool() {
  local tool=$1 node=$2
  shift 2
  broker_exec "/usr/lib/rabbitmq/bin/$tool" -n "$node@$BROKER_HOST" "$@"
}

# Gives a path inside the root (and what is below it) to the root's rabbitmq user, whose uid need
# not be this machine's.
broker_own() {
  [[ $(id -u) -eq 0 ]] || return 0
  if [[ -z $BROKER_ROOT ]]; then chown -R rabbitmq:rabbitmq "$1"; else chroot "$BROKER_ROOT" chown -R rabbitmq:rabbitmq "$1"; fi
}

# The pid of node $1's Erlang VM: its name is only in its environment, not its command line.
broker_pid_of() {
  local p
  for p in $(pgrep -f beam.smp); do
    # (a process may end between pgrep and the read: its environment is then gone)
    { tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null | grep -qx "RABBITMQ_NODENAME=$1@$BROKER_HOST" && echo "$p"
  done
  return 0
}

# broker_start_node NAME AMQP_PORT DIST_PORT BASE [EXTRA_ERL_ARGS]: starts a node -detached with its
# data, logs, enabled_plugins and rabbitmq.conf under BASE (a path inside the root), listening on
# loopback only (AMQP_PORT "-": its rabbitmq.conf says where), with up to the hard open-files limit (su and runuser leave 1,024, of which
# RabbitMQ keeps 927 handles: about 180 quorum queues led by one node use them all).
broker_start_node() {
  local name=$1 port=$2 dist=$3 base=$4 extra=${5:-}
  local host_base
  host_base=$(broker_path "$base")
  mkdir -p "$host_base/mnesia" "$host_base/log"
  [[ -f "$host_base/enabled_plugins" ]] || echo '[].' >"$host_base/enabled_plugins"
  touch "$host_base/rabbitmq.conf"
  broker_own "$base"
  # shellcheck disable=SC2016
  local listen=(RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$port")
  [[ $port != - ]] || listen=()
  broker_exec env \
    RABBITMQ_NODENAME="$name@$BROKER_HOST" \
    "${listen[@]}" \
    RABBITMQ_DIST_PORT="$dist" \
    RABBITMQ_MNESIA_BASE="$base/mnesia" \
    RABBITMQ_LOG_BASE="$base/log" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$base/enabled_plugins" \
    RABBITMQ_CONFIG_FILE="$base/rabbitmq" \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1} $extra" \
    /bin/sh -c 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; cd /var/lib/rabbitmq && exec /usr/lib/rabbitmq/bin/rabbitmq-server -detached'
}

# Waits until node $1 has booted (it registers with epmd a moment after -detached returns).
broker_wait_node() {
  local deadline=$((SECONDS + ${2:-90}))
  until broker_tool rabbitmqctl "$1" await_startup --timeout 5 >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}

# Stops node $1 (asks, then kills what is left) and, in a chroot once no node of the version runs,
# its epmd, so that nothing of the run stays behind.
broker_stop_node() {
  broker_tool rabbitmqctl "$1" stop >/dev/null 2>&1 || true
  local pid
  pid=$(broker_pid_of "$1")
  [[ -z $pid ]] || kill -9 $pid 2>/dev/null || true
  # epmd refuses while another node of the version is registered with it.
  [[ -z $BROKER_ROOT ]] || broker_exec /usr/bin/epmd -kill >/dev/null 2>&1 || true
}

# The Debian mirror the chroots come from.
broker_mirror() {
  if [[ -n ${MO_DEBIAN_MIRROR:-} ]]; then echo "$MO_DEBIAN_MIRROR"; return; fi
  local uri
  uri=$(grep -rhoE '^(URIs:|deb) +https?://[^ ]*/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null |
    grep -oE 'https?://[^ ]*' | head -n 1)
  echo "${uri:-http://deb.debian.org/debian}"
}

# Installs the version's rabbitmq-server: Debian 12's own with apt-get, or a chroot of its suite
# (debootstrap, then apt-get inside), built aside and moved into place when complete.
broker_install() {
  if [[ -z $BROKER_ROOT ]]; then
    command -v rabbitmq-server >/dev/null && return 0
    _broker_apt rabbitmq-server
    return
  fi
  [[ -f "$BROKER_ROOT/.mo-amqp-ready" ]] && return 0
  [[ $(id -u) -eq 0 ]] || { broker_say "RabbitMQ $BROKER_VERSION is installed into a Debian chroot, which needs root"; exit 1; }
  command -v debootstrap >/dev/null || _broker_apt debootstrap
  local partial="$BROKER_ROOT.partial" mirror started=$SECONDS
  mirror=$(broker_mirror)
  rm -rf "$partial"
  mkdir -p "$BROKER_CACHE"
  broker_say "installing into a Debian $BROKER_SUITE chroot, $BROKER_ROOT (from $mirror; once, about 2 minutes)"
  if ! debootstrap --variant=minbase "$BROKER_SUITE" "$partial" "$mirror" >"$partial.log" 2>&1; then
    broker_say "debootstrap failed; see $partial.log"
    exit 1
  fi
  cp /etc/hosts "$partial/etc/hosts" # the node names use this machine's host name
  # sid's Release file may be past its Valid-Until on a mirror snapshot; its signature is still checked.
  # shellcheck disable=SC2016
  if ! unshare --mount --propagation private -- /bin/sh -c '
      mount -t proc proc "$1/proc" && mount --rbind /dev "$1/dev" &&
      DEBIAN_FRONTEND=noninteractive chroot "$1" /bin/sh -c "
        apt-get -o Acquire::Check-Valid-Until=false update -qq &&
        apt-get -o Acquire::Check-Valid-Until=false install -y -qq --no-install-recommends rabbitmq-server"' \
      sh "$partial" >>"$partial.log" 2>&1; then
    broker_say "apt-get install rabbitmq-server failed in the chroot; see $partial.log"
    exit 1
  fi
  local installed
  installed=$(chroot "$partial" dpkg-query -W -f '${Version}' rabbitmq-server)
  if [[ $installed != "$BROKER_VERSION".* ]]; then
    broker_say "Debian $BROKER_SUITE now ships rabbitmq-server $installed, not $BROKER_VERSION.x: see scripts/brokers.js"
    exit 1
  fi
  echo "$installed" >"$partial/.mo-amqp-ready"
  rm -f "$partial.log"
  mv "$partial" "$BROKER_ROOT"
  broker_say "rabbitmq-server $installed installed in $((SECONDS - started)) s"
}

_broker_apt() {
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
    broker_say "$1 is not installed, and installing it needs root and apt-get (Debian/Ubuntu):"
    broker_say "sudo apt-get install $1, or point AMQP__URL at a running broker, then run this again."
    exit 1
  fi
  broker_say "installing $1 with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$1" >/dev/null
}
