#!/usr/bin/env bash
# A RabbitMQ node that speaks only TLS (amqps://localhost:5691), for the TLS
# tests, beside the broker of scripts/rabbitmq.sh (which must be installed: run
# its ensure first) and the cluster of scripts/rabbitmq-cluster.sh.
#
#   scripts/rabbitmq-tls.sh certs DIR [CN]  make test certificates in DIR (see below); CN names
#                                           the client certificate (default mo-amqp-tls-client)
#   scripts/rabbitmq-tls.sh start DIR       (re)start the node with DIR's ca.pem, server.pem and server.key
#   scripts/rabbitmq-tls.sh stop            stop the node and delete its data
#   scripts/rabbitmq-tls.sh status          say whether it runs; exit 0 if it does
#   scripts/rabbitmq-tls.sh ctl ARGS...     rabbitmqctl against the node (add_user, set_permissions, …)
#
# The node (mo-tls@host, data under $MO_TLS_DIR, default /tmp/mo-amqp-tls) listens
# on 127.0.0.1:5691 only, asks for a client certificate (verify_peer) without
# requiring one, and accepts PLAIN and EXTERNAL logins (rabbitmq_auth_mechanism_ssl;
# the user is the certificate's CN). It shares the rabbitmq user's Erlang cookie.
#
# certs writes: ca.pem/ca.key (the test CA), server.pem/server.key (localhost and
# 127.0.0.1), client.pem/client.key (CN as given), client-encrypted.key (the same
# key, AES-256 encrypted with $MO_TLS_KEY_PASSPHRASE; only when that is set),
# other-ca.pem/other-ca.key (an unrelated CA) and stranger.pem/stranger.key (a
# client certificate that CA signed). The certificates are valid for two days.
set -euo pipefail

BASE=${MO_TLS_DIR:-/tmp/mo-amqp-tls}
NODE="mo-tls@$(hostname -s)"
PORT=5691
DIST_PORT=25691

say() { printf '[rabbitmq-tls] %s\n' "$*" >&2; }

# Runs a command as the rabbitmq user (no shell in between: arguments stay as given).
as_rabbitmq() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u rabbitmq -- env HOME=/var/lib/rabbitmq "$@"
  else
    env HOME=/var/lib/rabbitmq "$@"
  fi
}

ctl() { as_rabbitmq /usr/lib/rabbitmq/bin/rabbitmqctl -n "$NODE" "$@"; }

running() { ctl await_startup --timeout 1 >/dev/null 2>&1; }

# The node's Erlang VM: its name is only in its environment, not its command line.
pid_of_node() {
  local p
  for p in $(pgrep -f beam.smp); do
    { tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null | grep -qx "RABBITMQ_NODENAME=$NODE" && echo "$p"
  done
  return 0
}

make_certs() { # make_certs DIR CN
  local dir=$1 cn=$2 days=2
  mkdir -p "$dir"
  cd "$dir"
  local key=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
  ca() { # ca NAME SUBJECT
    openssl req -x509 "${key[@]}" -keyout "$1.key" -out "$1.pem" -days "$days" -subj "/CN=$2" \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
  }
  leaf() { # leaf NAME CN CA EXTENSIONS
    openssl req -new "${key[@]}" -keyout "$1.key" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
    printf 'basicConstraints=CA:FALSE\n%s\n' "$4" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -days "$days" -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
  }
  ca ca 'mo-amqp test CA'
  ca other-ca 'mo-amqp unrelated test CA'
  leaf server localhost ca $'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth'
  leaf client "$cn" ca 'extendedKeyUsage=clientAuth'
  leaf stranger "$cn" other-ca 'extendedKeyUsage=clientAuth'
  if [[ -n "${MO_TLS_KEY_PASSPHRASE:-}" ]]; then
    openssl pkey -in client.key -aes256 -passout env:MO_TLS_KEY_PASSPHRASE -out client-encrypted.key
  fi
  chmod 600 ./*.key
  say "certificates in $dir (client CN $cn)"
}

start_node() { # start_node CERTDIR
  local certs=$1 f
  for f in ca.pem server.pem server.key; do
    [[ -r "$certs/$f" ]] || { say "$certs/$f is missing: run $0 certs $certs first"; exit 1; }
  done
  command -v rabbitmq-server >/dev/null || { say "rabbitmq-server is not installed: run scripts/rabbitmq.sh ensure"; exit 1; }
  if running || [[ -n "$(pid_of_node)" ]]; then stop_node; fi
  mkdir -p "$BASE/mnesia" "$BASE/log" "$BASE/certs"
  # The node runs as rabbitmq and reads its own copy (the test's directory may be private).
  cp "$certs/ca.pem" "$certs/server.pem" "$certs/server.key" "$BASE/certs/"
  cat >"$BASE/rabbitmq.conf" <<EOF
listeners.tcp = none
listeners.ssl.1 = 127.0.0.1:$PORT
ssl_options.cacertfile = $BASE/certs/ca.pem
ssl_options.certfile = $BASE/certs/server.pem
ssl_options.keyfile = $BASE/certs/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false
auth_mechanisms.1 = PLAIN
auth_mechanisms.2 = EXTERNAL
ssl_cert_login_from = common_name
EOF
  echo '[rabbitmq_auth_mechanism_ssl].' >"$BASE/enabled_plugins"
  [[ $(id -u) -eq 0 ]] && chown -R rabbitmq:rabbitmq "$BASE"
  as_rabbitmq sh -c "cd /var/lib/rabbitmq && \
    RABBITMQ_NODENAME=$NODE \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_DIST_PORT=$DIST_PORT \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='-kernel inet_dist_use_interface {127,0,0,1}' \
    RABBITMQ_MNESIA_BASE=$BASE/mnesia \
    RABBITMQ_LOG_BASE=$BASE/log \
    RABBITMQ_ENABLED_PLUGINS_FILE=$BASE/enabled_plugins \
    RABBITMQ_CONFIG_FILE=$BASE/rabbitmq \
    exec /usr/lib/rabbitmq/bin/rabbitmq-server -detached"
  # The node registers with epmd a moment after -detached returns.
  local deadline=$((SECONDS + 90))
  until ctl await_startup --timeout 5 >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { say "$NODE did not start; see $BASE/log"; exit 1; }
    sleep 1
  done
  say "$NODE running: amqps://localhost:$PORT"
}

stop_node() {
  ctl stop >/dev/null 2>&1 || true
  local pid
  pid=$(pid_of_node)
  [[ -z "$pid" ]] || kill -9 $pid 2>/dev/null || true
  rm -rf "$BASE"
  say "stopped, data deleted"
}

case "${1:-}" in
  certs) make_certs "${2:?which directory}" "${3:-mo-amqp-tls-client}" ;;
  start) start_node "$(cd "${2:?which certificate directory}" && pwd)" ;;
  stop) stop_node ;;
  status)
    if running; then say "$NODE running: amqps://localhost:$PORT"; else say "$NODE is not running"; exit 1; fi
    ;;
  ctl)
    shift
    ctl "$@"
    ;;
  *)
    sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
