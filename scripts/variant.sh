#!/usr/bin/env bash
# scripts/variant.sh NAME [CMD...]: runs CMD (default: the unit, e2e and peers suites) in a copy of
# this checkout whose dependencies are changed as a user's app would change them:
#
#   nest-12     NestJS 12: the @nestjs/* devDependencies at 12, golevelup's peer range lifted by the
#               `overrides` README.md gives a Nest 12 app
#   amqplib-2   amqplib 2.3.1, put in by an override (docs/hardening.md; scripts/amqplib-override.sh)
#
# The copy is $MO_AMQP_CACHE/variants/NAME (see scripts/lib/broker.sh), made anew each time from the
# working tree's files (tracked and new, not ignored ones) with a node_modules of its own: the
# checkout itself is not touched. The services (RabbitMQ, PostgreSQL, the Python peers) are the
# ones scripts/*.sh ensure, as for `npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -eq 0 ]]; then
  CACHE=${MO_AMQP_CACHE:-/var/cache/nestjs-mo-amqp}
else
  CACHE=${MO_AMQP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nestjs-mo-amqp}
fi

say() { printf '[variant %s] %s\n' "$name" "$*" >&2; }

name=${1:-}
case "$name" in
  nest-12 | amqplib-2) ;;
  *)
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
shift
(($#)) || set -- npx jest test/unit test/e2e test/peers

dir="$CACHE/variants/$name"
rm -rf "$dir"
mkdir -p "$dir"
git ls-files -z --cached --others --exclude-standard | tar --null --ignore-failed-read -cf - -T - 2>/dev/null | tar -xf - -C "$dir"
cd "$dir"
say "in $dir"

case "$name" in
  nest-12)
    for dependency in common core testing platform-express; do npm pkg set "devDependencies.@nestjs/$dependency=~12.6.3"; done
    npm pkg set 'devDependencies.@nestjs/config=^12.0.1' 'devDependencies.@nestjs/terminus=^12.2.0' \
      'devDependencies.@nestjs/typeorm=^12.0.2' 'devDependencies.@nestjs/mapped-types=^12.0.1' \
      'devDependencies.@nestjs/cli=^12.0.15'
    # README.md's overrides for a Nest 12 app, as a reader copies them.
    node -e '
      const fs = require("node:fs");
      const readme = fs.readFileSync("README.md", "utf8");
      const block = /^<!-- package\.json: Nest 12 -->\n\n?```json\n([\s\S]*?)^```$/m.exec(readme);
      if (!block) throw new Error("README.md has no package.json block for Nest 12");
      const manifest = JSON.parse(fs.readFileSync("package.json", "utf8"));
      manifest.overrides = { ...manifest.overrides, ...JSON.parse(block[1]).overrides };
      fs.writeFileSync("package.json", JSON.stringify(manifest, null, 2) + "\n");
      // The lock pins Nest 11 (and the golevelup entries resolved against it): resolved anew.
      const lock = JSON.parse(fs.readFileSync("package-lock.json", "utf8"));
      for (const key of Object.keys(lock.packages)) {
        if (/(^|\/)node_modules\/@(nestjs|golevelup)\//.test(key)) delete lock.packages[key];
      }
      fs.writeFileSync("package-lock.json", JSON.stringify(lock, null, 2) + "\n");'
    npm install --no-audit --no-fund --prefer-offline >&2
    version=$(node -p 'require("@nestjs/core/package.json").version')
    [[ $version == 12.* ]] || { say "installed @nestjs/core $version, not 12"; exit 1; }
    say "NestJS $version"
    ;;
  amqplib-2)
    npm ci --no-audit --no-fund --prefer-offline >&2
    bash scripts/amqplib-override.sh 2.3.1 >&2
    ;;
esac
npm run build >&2
say "$*"
exec "$@"
