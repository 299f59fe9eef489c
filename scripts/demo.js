// `npm run demo`: the sample app with AMQP on, a few events posted over HTTP, and
// what a plain consumer bound `#.#.#` on the exchange received (as in the seed's
// Python example). Expects a broker (scripts/rabbitmq.sh ensure) and a built
// sample app (nest build sample-app); npm run demo does both first.
const { spawn } = require('node:child_process');
const { once } = require('node:events');
const net = require('node:net');
const path = require('node:path');
const amqp = require('amqplib');

const BROKER_URL = process.env.AMQP__URL || 'amqp://localhost:5672';
const EXCHANGE = process.env.AMQP__EXCHANGE || 'os2mo';
const MAIN = path.join(__dirname, '..', 'dist-sample-app', 'sample-app', 'src', 'main.js');

const EVENTS = [
  ['org_unit', 'org_unit', 'create', { uuid: 'f494ad89-039d-478e-91f2-a63566554bd6' }],
  ['employee', 'employee', 'create', { uuid: 'c390b9a2-7202-48e6-972b-ce36a90065c4' }],
  [
    'employee',
    'engagement',
    'create',
    { uuid: 'c390b9a2-7202-48e6-972b-ce36a90065c4', time: '2021-07-27T00:00:00+02:00' },
  ],
  ['org_unit', 'engagement', 'create', { uuid: 'f494ad89-039d-478e-91f2-a63566554bd6', time: '2021-07-27' }],
  ['employee', 'address', 'update', { uuid: 'c390b9a2-7202-48e6-972b-ce36a90065c4' }],
];

async function freePort() {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  return port;
}

async function waitForHttp(url, child, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`the sample app exited with code ${child.exitCode}`);
    try {
      await fetch(url);
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  throw new Error(`the sample app did not answer at ${url} within ${timeoutMs} ms`);
}

async function main() {
  const connection = await amqp.connect(BROKER_URL);
  const channel = await connection.createChannel();
  await channel.assertExchange(EXCHANGE, 'topic', { durable: true });
  const { queue } = await channel.assertQueue('', { exclusive: true });
  await channel.bindQueue(queue, EXCHANGE, '#.#.#');
  const received = [];
  await channel.consume(queue, (m) => m && received.push(`  [${m.fields.routingKey}] ${m.content}`), { noAck: true });

  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const app = spawn(process.execPath, [MAIN], {
    env: { ...process.env, ENABLE_AMQP: 'true', AMQP__URL: BROKER_URL, AMQP__EXCHANGE: EXCHANGE, PORT: String(port) },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  try {
    await waitForHttp(base, app, 30_000);
    console.log(
      `Sample app on ${base}, publishing to exchange "${EXCHANGE}" at ${BROKER_URL.replace(/:[^:@/]*@/, ':***@')}\n`,
    );
    for (const [service, objectType, action, body] of EVENTS) {
      const res = await fetch(`${base}/events/${service}/${objectType}/${action}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      const result = await res.json();
      console.log(
        `POST /events/${service}/${objectType}/${action} -> ${res.status} ${result.status ?? result.message}`,
      );
      if (res.status !== 201 || result.status !== 'confirmed') throw new Error('the sample app did not publish');
    }
    const bad = await fetch(`${base}/events/employee/engagement/edit`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ uuid: 'c390b9a2-7202-48e6-972b-ce36a90065c4' }),
    });
    console.log(`POST /events/employee/engagement/edit -> ${bad.status} ${(await bad.json()).message}`);

    const deadline = Date.now() + 5_000;
    while (received.length < EVENTS.length && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    console.log(`\nA consumer bound "#.#.#" on "${EXCHANGE}" received ${received.length} message(s):`);
    console.log(received.join('\n'));
    if (received.length < EVENTS.length) throw new Error(`expected ${EVENTS.length} messages`);
  } finally {
    app.kill('SIGTERM');
    await once(app, 'exit');
    await connection.close();
  }
}

main().catch((err) => {
  console.error(`demo failed: ${err.message}`);
  process.exit(1);
});
