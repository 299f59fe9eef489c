// The RabbitMQ versions the project is tested on, and where each runs on this machine: one table
// for the shell scripts (scripts/lib/broker.sh reads it through `node scripts/brokers.js shell V`)
// and the tests (test/support/broker.ts). BROKER=<version> picks one; unset means 3.10, the
// broker Debian 12 itself ships, or whatever answers at AMQP__URL.
//
// 3.10 is Debian 12's own rabbitmq-server. 4.0 and 4.3 need a newer Erlang than Debian 12's
// glibc runs, so they are installed into a Debian chroot (trixie: 4.0.5, sid: 4.3.6) cached
// under MO_AMQP_CACHE, and run from it as processes of this machine, on ports of their own
// (the port offset below), with an epmd of their own: all three can run side by side.
'use strict';

const BROKERS = {
  '3.10': { suite: 'bookworm', chroot: false, offset: 0, epmdPort: 4369, denyDeprecated: false },
  '4.0': { suite: 'trixie', chroot: true, offset: 100, epmdPort: 4370, denyDeprecated: false },
  // Run with every deprecated feature denied, as upstream builds will: the suite must pass so.
  4.3: { suite: 'sid', chroot: true, offset: 200, epmdPort: 4371, denyDeprecated: true },
};

/** The version BROKER names ('3.10' when unset); throws naming what is allowed. */
function versionOf(name = process.env.BROKER) {
  const version = name === undefined || name === '' ? '3.10' : name;
  if (!Object.hasOwn(BROKERS, version)) {
    throw new Error(
      `BROKER="${version}" is not a tested RabbitMQ version: use one of ${Object.keys(BROKERS).join(', ')}`,
    );
  }
  return version;
}

/** Everything about one version: its ports, node names and chroot. */
function broker(name) {
  const version = versionOf(name);
  const { suite, chroot, offset, epmdPort, denyDeprecated } = BROKERS[version];
  // Node names of their own too, so a process list tells the versions apart.
  const tag = chroot ? `mo${version.replace('.', '')}-` : '';
  return {
    version,
    suite,
    chroot,
    epmdPort,
    denyDeprecated,
    amqpPort: 5672 + offset,
    distPort: 25672 + offset,
    managementPort: 15672 + offset,
    nodeName: chroot ? `${tag}rabbit` : 'rabbit',
    clusterNodePrefix: chroot ? `${tag}cluster-` : 'mo-cluster-',
    clusterAmqpPortBase: 5680 + offset,
    clusterDistPortBase: 25680 + offset,
    tlsPort: 5691 + offset,
    tlsDistPort: 25691 + offset,
    tlsNodeName: chroot ? `${tag}tls` : 'mo-tls',
    url: `amqp://localhost:${5672 + offset}`,
  };
}

module.exports = { BROKERS, broker, versionOf };

if (require.main === module) {
  // node scripts/brokers.js shell [VERSION]   shell assignments for scripts/lib/broker.sh
  // node scripts/brokers.js versions          the tested versions, one per line
  const [command, name] = process.argv.slice(2);
  try {
    if (command === 'versions') {
      process.stdout.write(`${Object.keys(BROKERS).join('\n')}\n`);
    } else if (command === 'shell') {
      const b = broker(name);
      const line = (k, v) => `BROKER_${k.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}=${JSON.stringify(String(v))}`;
      process.stdout.write(
        `${Object.entries(b)
          .map(([k, v]) => line(k, v))
          .join('\n')}\n`,
      );
    } else {
      process.stderr.write('usage: node scripts/brokers.js shell [VERSION] | versions\n');
      process.exit(2);
    }
  } catch (err) {
    process.stderr.write(`${err.message}\n`);
    process.exit(2);
  }
}
