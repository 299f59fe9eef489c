#!/usr/bin/env bash
# npm run test:brokers [-- VERSION...]: the e2e, peers and fault suites against each RabbitMQ
# version (default: every one scripts/brokers.js lists), one version after another, each node
# started by scripts/rabbitmq.sh with BROKER=<version> (4.x installed into a cached chroot first).
#
# While another version runs, Debian's own broker on 5672 is stopped (and started again at the
# end if it was running), so a test that forgot the BROKER's URL meets no broker at all instead
# of the wrong one. After each version's run, the deprecated features it used are listed; any
# fails the run. Ends with one Jest-style line, "Tests: N failed, N passed, N total", over all.
# Expects a build (npm run build) and the other services (scripts/postgresql.sh, python-peers.sh).
set -uo pipefail
cd "$(dirname "$0")/.."

mapfile -t versions < <(if (($#)); then printf '%s\n' "$@"; else node scripts/brokers.js versions; fi)
passed=0
failed=0
status=0
summary=()

say() { printf '::: test:brokers: %s\n' "$*"; }

# Adds the totals of a Jest log ("Tests:       1 failed, 151 passed, 152 total") to the sums.
count() {
  local totals
  totals=$(sed 's/\x1b\[[0-9;]*m//g' "$1" | grep -E '^Tests:' | tail -n 1)
  if [[ -z $totals ]]; then
    say "$2: Jest printed no totals (it did not run, or crashed)"
    status=1
    return
  fi
  passed=$((passed + $(grep -oE '[0-9]+ passed' <<<"$totals" | grep -oE '[0-9]+' || echo 0)))
  failed=$((failed + $(grep -oE '[0-9]+ failed' <<<"$totals" | grep -oE '[0-9]+' || echo 0)))
}

# run LABEL COMMAND...: runs a Jest command, its output shown and counted.
run() {
  local label=$1 log
  shift
  log=$(mktemp)
  say "$label"
  "$@" 2>&1 | tee "$log"
  [[ ${PIPESTATUS[0]} -eq 0 ]] || status=1
  count "$log" "$label"
  rm -f "$log"
}

default_was_up=false
if AMQP__URL= AMQP__HOST= AMQP__PORT= BROKER= bash scripts/rabbitmq.sh status 2>/dev/null; then default_was_up=true; fi

for version in "${versions[@]}"; do
  export BROKER=$version
  started=$SECONDS
  if [[ $version != 3.10 && $default_was_up == true ]]; then BROKER= bash scripts/rabbitmq.sh stop || status=1; fi
  if ! bash scripts/rabbitmq.sh ensure; then
    say "RabbitMQ $version did not start"
    status=1
    summary+=("RabbitMQ $version: did not start")
    continue
  fi
  installed=$SECONDS
  run "RabbitMQ $version: e2e and peers" npx jest test/e2e test/peers
  run "RabbitMQ $version: faults" npx jest -c jest.faults.config.js
  used=$(bash scripts/rabbitmq.sh diagnostics list_deprecated_features --used --formatter json 2>&1)
  if [[ $(tr -d ' \n' <<<"$used") != "[]" ]]; then
    say "RabbitMQ $version: deprecated features used: $used"
    status=1
  fi
  summary+=("RabbitMQ $version: $((SECONDS - started)) s ($((installed - started)) s to install and start), deprecated features used: $(tr -d ' \n' <<<"$used")")
  # A 4.x node is stopped again: it is only for this run. Debian's own is left as it was.
  if [[ $version != 3.10 ]]; then bash scripts/rabbitmq.sh stop || status=1; fi
done

unset BROKER
if [[ $default_was_up == true ]] && ! bash scripts/rabbitmq.sh status 2>/dev/null; then bash scripts/rabbitmq.sh start || status=1; fi

for line in "${summary[@]}"; do say "$line"; done
echo "Tests:       $failed failed, $passed passed, $((failed + passed)) total"
exit $status
