#!/usr/bin/env bash
# Puts another amqplib (e.g. 2.3.1) into this checkout the way an app's npm
# `overrides` entry does, golevelup's and amqp-connection-manager's copies
# included, for the amqplib 2 cell of CI (scripts/variant.sh amqplib-2). npm refuses an override
# of a direct dependency unless the two agree (EOVERRIDE), so the dependency is
# set to the version too and the override refers to it ("$amqplib").
# Changes package.json and package-lock.json: for a CI checkout, not to commit.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:?usage: scripts/amqplib-override.sh <amqplib version>}
npm pkg set "dependencies.amqplib=$version" 'overrides.amqplib=$amqplib'
npm install --no-audit --no-fund
# One copy, the version asked for, wherever it is required from.
copies=$(npm ls amqplib --all --parseable | sort -u)
found=$(for dir in $copies; do node -p "require('$dir/package.json').version"; done | sort -u)
echo "amqplib in node_modules: $found"
[[ "$found" == "$version" ]] || { echo "expected only amqplib $version" >&2; exit 1; }
