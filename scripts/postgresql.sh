#!/usr/bin/env bash
# A real PostgreSQL for the outbox's tests, the demo and the benchmarks, on this machine.
#
#   scripts/postgresql.sh ensure    use the server answering at MO_PG_URL if set (only checked, nothing
#                                   created); else start the local Debian cluster on 127.0.0.1:5432
#                                   (pg_ctlcluster; pg_createcluster when there is none); else, as root
#                                   on Debian/Ubuntu, install postgresql with apt-get and start it; then
#                                   make the test role mo_amqp and its database mo_amqp_test (idempotent)
#   scripts/postgresql.sh start     start the local cluster (if it is not answering) and wait for it
#   scripts/postgresql.sh stop      stop the local cluster (fast: clients are cut off) and wait until gone
#   scripts/postgresql.sh restart   stop, then start
#   scripts/postgresql.sh status    say whether a server answers; exit 0 if it does
#   scripts/postgresql.sh url       print the tests' connection URL (MO_PG_URL if set)
#   scripts/postgresql.sh psql ...  run psql as the test role on the test database
set -euo pipefail

START_TIMEOUT_S=${POSTGRESQL_START_TIMEOUT_S:-60}
PG_ROLE=mo_amqp
PG_PASSWORD=mo_amqp # the tests' own, on a server listening on loopback only
PG_DB=mo_amqp_test
DEFAULT_HOST=127.0.0.1
DEFAULT_PORT=5432

say() { printf '[postgresql] %s\n' "$*" >&2; }

url() {
  if [[ -n "${MO_PG_URL:-}" ]]; then
    printf '%s\n' "$MO_PG_URL"
  else
    printf 'postgres://%s:%s@%s:%s/%s\n' "$PG_ROLE" "$PG_PASSWORD" "$DEFAULT_HOST" "$DEFAULT_PORT" "$PG_DB"
  fi
}

# Host and port to check: from MO_PG_URL (password never printed), else 127.0.0.1:5432.
target() {
  local u=${MO_PG_URL:-} re='^postgres(ql)?://([^@/]*@)?(\[[^]/]*\]|[^:/?#]*)(:([0-9]+))?'
  if [[ -n "$u" ]]; then
    [[ "$u" =~ $re ]] || { say "MO_PG_URL is not a postgres:// or postgresql:// URL"; exit 2; }
    HOST=${BASH_REMATCH[3]:-localhost}
    HOST=${HOST#[}; HOST=${HOST%]}
    PORT=${BASH_REMATCH[5]:-5432}
  else
    HOST=$DEFAULT_HOST
    PORT=$DEFAULT_PORT
  fi
}

is_local() {
  case "$HOST" in localhost | 127.* | ::1 | "") return 0 ;; *) return 1 ;; esac
}

# True when a PostgreSQL server accepts connections: pg_isready when installed, else the
# server's one-byte answer ('S' or 'N') to an SSLRequest.
answers() {
  if command -v pg_isready >/dev/null; then
    timeout 5 pg_isready -q -h "$HOST" -p "$PORT" -t 3 2>/dev/null
    return
  fi
  local first
  # shellcheck disable=SC2016 # $0 and $1 are the inner shell's
  first=$(timeout 3 bash -c '
    exec 3<>"/dev/tcp/$0/$1" || exit 1
    printf "\x00\x00\x00\x08\x04\xd2\x16\x2f" >&3
    head -c 1 <&3' "$HOST" "$PORT" 2>/dev/null) || return 1
  [[ "$first" == S || "$first" == N ]]
}

wait_until() { # wait_until up|down
  local deadline=$((SECONDS + START_TIMEOUT_S))
  while ((SECONDS < deadline)); do
    if [[ $1 == up ]]; then answers && return 0; else answers || return 0; fi
    sleep 0.5
  done
  return 1
}

# The local Debian cluster on PORT: sets VER, NAME, STATUS, LOG; false when there is none.
find_cluster() {
  command -v pg_lsclusters >/dev/null || return 1
  local line
  line=$(pg_lsclusters -h 2>/dev/null | awk -v port="$PORT" '$3 == port { print; exit }')
  [[ -n "$line" ]] || return 1
  read -r VER NAME _ STATUS _ _ LOG <<<"$line"
  LOG=${LOG:-/var/log/postgresql/postgresql-$VER-$NAME.log}
}

install_server() {
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
    say "No PostgreSQL answers at $HOST:$PORT and Debian's postgresql is not installed."
    say "Install it (Debian/Ubuntu: sudo apt-get install postgresql), then run this again as root,"
    say "or point MO_PG_URL at a running server with the test role and database."
    exit 1
  fi
  say "installing postgresql with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends postgresql >/dev/null
}

create_cluster() {
  local ver
  ver=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/postgres' 2>/dev/null |
    awk -F/ '{ print $5 }' | sort -n | tail -n 1)
  if [[ -z "$ver" ]]; then
    say "no PostgreSQL server binaries under /usr/lib/postgresql; install postgresql"
    exit 1
  fi
  if [[ -n "$(pg_lsclusters -h 2>/dev/null)" ]]; then
    say "no PostgreSQL cluster on port $PORT, but others exist (pg_lsclusters): set MO_PG_URL to one of them"
    exit 1
  fi
  if [[ $(id -u) -ne 0 ]]; then
    say "no PostgreSQL cluster on port $PORT; create one as root (pg_createcluster $ver main --port $PORT)"
    exit 1
  fi
  say "creating cluster $ver/main on port $PORT (listen_addresses: localhost)"
  pg_createcluster "$ver" main --port "$PORT" >/dev/null
}

start_server() {
  target
  if answers; then
    say "PostgreSQL answers at $HOST:$PORT"
    return 0
  fi
  if [[ -n "${MO_PG_URL:-}" && ${1:-} == ensure ]]; then
    say "No PostgreSQL answers at $HOST:$PORT (MO_PG_URL): start it there, or unset MO_PG_URL."
    exit 1
  fi
  if ! is_local; then
    say "No PostgreSQL answers at $HOST:$PORT, and that is not this machine: start it there, or unset MO_PG_URL."
    exit 1
  fi
  if ! command -v pg_ctlcluster >/dev/null || ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
    install_server
  fi
  find_cluster || { create_cluster; find_cluster; } || {
    say "no PostgreSQL cluster on port $PORT (pg_lsclusters); create one, or set MO_PG_URL"
    exit 1
  }
  # Debian's packaging may have started it already (systemd); only start when still down.
  if [[ $STATUS != online* ]]; then
    if [[ $(id -u) -ne 0 && $(id -un) != postgres ]]; then
      say "cluster $VER/$NAME is down; start it as root (sudo pg_ctlcluster $VER $NAME start) or run this as root"
      exit 1
    fi
    say "starting cluster $VER/$NAME"
    if ! timeout "$START_TIMEOUT_S" pg_ctlcluster "$VER" "$NAME" start; then
      say "pg_ctlcluster $VER $NAME start failed; see $LOG"
      exit 1
    fi
  fi
  if ! wait_until up; then
    say "PostgreSQL did not answer at $HOST:$PORT within ${START_TIMEOUT_S}s; see $LOG"
    say "(the cluster must listen on localhost: listen_addresses in /etc/postgresql/$VER/$NAME/postgresql.conf)"
    exit 1
  fi
  say "PostgreSQL answers at $HOST:$PORT"
}

stop_server() {
  target
  if ! answers; then say "PostgreSQL is not running at $HOST:$PORT"; return 0; fi
  is_local || { say "$HOST is not this machine; not stopping it"; exit 1; }
  find_cluster || { say "no Debian cluster on port $PORT here (pg_lsclusters); not stopping what answers"; exit 1; }
  say "stopping cluster $VER/$NAME"
  if ! timeout "$START_TIMEOUT_S" pg_ctlcluster "$VER" "$NAME" stop -m fast; then
    say "pg_ctlcluster $VER $NAME stop failed; see $LOG"
    exit 1
  fi
  wait_until down || { say "PostgreSQL still answers after ${START_TIMEOUT_S}s"; exit 1; }
  say "stopped"
}

# psql as the test role over TCP on 127.0.0.1 (scram in Debian's pg_hba); the password goes
# through the environment, not the command line.
as_test_role() {
  PGPASSWORD=$PG_PASSWORD PGCONNECT_TIMEOUT=5 timeout 30 psql -X -q -At -v ON_ERROR_STOP=1 \
    -h "$HOST" -p "$PORT" -U "$PG_ROLE" -d "$PG_DB" "$@"
}

# psql as the postgres superuser on the local socket: peer authentication as the postgres user.
as_superuser() (
  local cmd=(psql -X -q -At -v ON_ERROR_STOP=1 -p "$PORT" -d postgres)
  cd / # the postgres user may not read the caller's directory
  if [[ $(id -un) == postgres ]]; then
    timeout 30 "${cmd[@]}"
  elif command -v runuser >/dev/null; then
    timeout 30 runuser -u postgres -- "${cmd[@]}"
  else
    timeout 30 su postgres -s /bin/sh -c "$(printf '%q ' "${cmd[@]}")"
  fi
)

# True when the test role logs in with its password and owns the test database.
test_role_ready() {
  [[ $(as_test_role -c "SELECT d.datdba = r.oid FROM pg_database d, pg_roles r
    WHERE d.datname = current_database() AND r.rolname = current_user" 2>/dev/null) == t ]]
}

ensure_test_role() {
  command -v psql >/dev/null || { say "psql is not installed (Debian: postgresql-client)"; exit 1; }
  if test_role_ready; then
    say "role $PG_ROLE logs in on $HOST:$PORT and owns database $PG_DB"
    return 0
  fi
  if [[ $(id -u) -ne 0 && $(id -un) != postgres ]]; then
    say "role $PG_ROLE cannot log in to database $PG_DB on $HOST:$PORT; run this as root to create them,"
    say "or create them yourself (LOGIN role $PG_ROLE with the password in 'url', database $PG_DB owned by it)"
    exit 1
  fi
  say "creating role $PG_ROLE and database $PG_DB (if missing)"
  if ! as_superuser >/dev/null <<SQL; then
SET password_encryption = 'scram-sha-256';
SELECT 'CREATE ROLE $PG_ROLE' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_ROLE')\\gexec
ALTER ROLE $PG_ROLE LOGIN PASSWORD '$PG_PASSWORD';
SELECT 'CREATE DATABASE $PG_DB OWNER $PG_ROLE' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$PG_DB')\\gexec
ALTER DATABASE $PG_DB OWNER TO $PG_ROLE;
SQL
    say "could not create role $PG_ROLE and database $PG_DB as the postgres user on port $PORT"
    exit 1
  fi
  if ! test_role_ready; then
    say "role $PG_ROLE still cannot log in with its password over TCP at $HOST:$PORT;"
    say "pg_hba.conf needs Debian's 'host all all 127.0.0.1/32 scram-sha-256' line"
    exit 1
  fi
  say "role $PG_ROLE logs in on $HOST:$PORT and owns database $PG_DB"
}

case "${1:-}" in
  ensure)
    start_server ensure
    [[ -n "${MO_PG_URL:-}" ]] || ensure_test_role
    ;;
  start) start_server ;;
  stop) stop_server ;;
  restart) stop_server; start_server ;;
  status)
    target
    if answers; then say "PostgreSQL answers at $HOST:$PORT"; else say "no PostgreSQL at $HOST:$PORT"; exit 1; fi
    ;;
  url) url ;;
  psql)
    shift
    if [[ -n "${MO_PG_URL:-}" ]]; then PGCONNECT_TIMEOUT=5 exec psql "$MO_PG_URL" "$@"; fi
    target
    PGPASSWORD=$PG_PASSWORD PGCONNECT_TIMEOUT=5 exec psql -h "$HOST" -p "$PORT" -U "$PG_ROLE" -d "$PG_DB" "$@"
    ;;
  *)
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
