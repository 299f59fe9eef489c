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
# With BROKER=4.0 or 4.3 it is that version's node (mo43-tls, amqps://localhost:5891
# for 4.3; scripts/brokers.js), run from its chroot, MO_TLS_DIR inside it.
#
# certs writes: ca.pem/ca.key (the test CA), server.pem/server.key (localhost and
# 127.0.0.1), client.pem/client.key (CN as given), client-encrypted.key (the same
# key, AES-256 encrypted with $MO_TLS_KEY_PASSPHRASE; only when that is set),
# other-ca.pem/other-ca.key (an unrelated CA) and stranger.pem/stranger.key (a
# client certificate that CA signed). The certificates are valid for two days.
set -euo pipefail

# shellcheck source=lib/broker.sh
source "$(dirname "$0")/lib/broker.sh"
BASE=${MO_TLS_DIR:-/tmp/mo-amqp-tls}
NODE=$BROKER_TLS_NODE_NAME
PORT=$BROKER_TLS_PORT

say() { printf '[rabbitmq-tls %s] %s\n' "$BROKER_VERSION" "$*" >&2; }

ctl() { broker_tool rabbitmqctl "$NODE" "$@"; }

running() { ctl await_startup --timeout 1 >/dev/null 2>&1; }

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
  broker_install
  if running || [[ -n "$(broker_pid_of "$NODE")" ]]; then stop_node; fi
  local base
  base=$(broker_path "$BASE")
  mkdir -p "$base/certs"
  # The node runs as rabbitmq and reads its own copy (the test's directory may be private).
  cp "$certs/ca.pem" "$certs/server.pem" "$certs/server.key" "$base/certs/"
  cat >"$base/rabbitmq.conf" <<EOF
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
  echo '[rabbitmq_auth_mechanism_ssl].' >"$base/enabled_plugins"
  broker_start_node "$NODE" - "$BROKER_TLS_DIST_PORT" "$BASE"
  broker_wait_node "$NODE" || { say "$NODE did not start; see $base/log"; exit 1; }
  say "$NODE@$BROKER_HOST running: amqps://localhost:$PORT"
}

stop_node() {
  broker_stop_node "$NODE"
  rm -rf "$(broker_path "$BASE")"
  say "stopped, data deleted"
}

case "${1:-}" in
  certs) make_certs "${2:?which directory}" "${3:-mo-amqp-tls-client}" ;;
  start) start_node "$(cd "${2:?which certificate directory}" && pwd)" ;;
  stop) stop_node ;;
  status)
    if running; then say "$NODE@$BROKER_HOST running: amqps://localhost:$PORT"; else say "$NODE is not running"; exit 1; fi
    ;;
  ctl)
    shift
    ctl "$@"
    ;;
  *)
    sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
