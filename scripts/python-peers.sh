#!/usr/bin/env bash
# Real Python peers for the conformance tests (test/peers/): the readers OS2mo's
# consumers use. Debian's python3 with pika (the seed's consumer script) and
# pydantic 1 (ramqp's payload model), and the zone database; as root on
# Debian/Ubuntu they are installed with apt-get when missing. The stricter
# datetime.fromisoformat of Python 3.7-3.10 comes from pyenv's versions.
#
#   scripts/python-peers.sh ensure    install what is missing, say what was found
set -euo pipefail

PY=/usr/bin/python3
say() { printf '[python-peers] %s\n' "$*" >&2; }

ready() {
  [[ -x $PY ]] && "$PY" -c 'import pika, pydantic, zoneinfo; zoneinfo.ZoneInfo("Europe/Copenhagen")' 2>/dev/null
}

ensure() {
  if ! ready; then
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
      say "Debian's python3 with python3-pika, python3-pydantic and tzdata is needed for the conformance tests."
      say "Install them (sudo apt-get install python3 python3-pika python3-pydantic tzdata), then run this again."
      exit 1
    fi
    say "installing python3-pika, python3-pydantic and tzdata with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends python3 python3-pika python3-pydantic tzdata >/dev/null
    ready || { say "installed, but $PY still cannot import pika, pydantic and zoneinfo"; exit 1; }
  fi
  say "$("$PY" -c 'import sys, pika, pydantic; print("python", sys.version.split()[0], "pika", pika.__version__, "pydantic", pydantic.VERSION)')"
  local root=${PYENV_ROOT:-$HOME/.pyenv} found=()
  for bin in "$root"/versions/3.*/bin/python3; do [[ -x $bin ]] && found+=("$(basename "$(dirname "$(dirname "$bin")")")"); done
  if ((${#found[@]})); then
    say "pyenv versions: ${found[*]}"
  else
    say "no pyenv Python 3 under $root/versions: the check against Python 3.7-3.10's fromisoformat will fail"
  fi
}

case "${1:-}" in
  ensure) ensure ;;
  *)
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
