// `npm run demo`: the sample organisation app with AMQP on, its data in PostgreSQL
// and the outbox on, a short scripted scenario over HTTP, and the events its own
// consumer (a plain @RabbitSubscribe bound #) received, each beside the trace id
// of the request that produced it; then the app's metrics as Prometheus scrapes them.
// npm run demo first ensures a broker and a PostgreSQL and builds the app.
const { execFileSync, spawn } = require('node:child_process');
const { once } = require('node:events');
const net = require('node:net');
const path = require('node:path');
const readline = require('node:readline');
const { Client } = require('pg');

const BROKER_URL = process.env.AMQP__URL || 'amqp://localhost:5672';
const EXCHANGE = process.env.AMQP__EXCHANGE || 'os2mo';
const MAIN = path.join(__dirname, '..', 'dist-sample-app', 'sample-app', 'src', 'main.js');
// The PostgreSQL scripts/postgresql.sh ensured (MO_PG_URL if set). The app's tables and its outbox
// go into a schema of this run's own, dropped at the end.
const DATABASE_URL = execFileSync('bash', [path.join(__dirname, 'postgresql.sh'), 'url'], { encoding: 'utf8' }).trim();
const SCHEMA = `mo_amqp_demo_${process.pid}`;
const OUTBOX_TABLE = `${SCHEMA}.mo_amqp_outbox`;

async function onDatabase(statement) {
  const client = new Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

async function freePort() {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  return port;
}

/** Starts the sample app and collects the lines its event-log consumer prints. */
async function startApp(port, metricsPort) {
  const child = spawn(process.execPath, [MAIN], {
    env: {
      ...process.env,
      ENABLE_AMQP: 'true',
      AMQP__URL: BROKER_URL,
      AMQP__EXCHANGE: EXCHANGE,
      DATABASE_URL,
      DATABASE_SCHEMA: SCHEMA,
      // The app's TypeORM migration makes the outbox table at start-up (outboxMigrationSql).
      AMQP__OUTBOX: 'postgres',
      AMQP__OUTBOX_URL: DATABASE_URL,
      AMQP__OUTBOX_TABLE: OUTBOX_TABLE,
      PORT: String(port),
      METRICS_PORT: String(metricsPort),
      NO_COLOR: '1',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const consumed = [];
  let listening = false;
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    const event = /\[MoEventLog\] (\[.*)$/.exec(line);
    if (event) consumed.push(event[1]);
    if (line.includes('Sample app listening')) listening = true;
  });
  const deadline = Date.now() + 30_000;
  while (!listening) {
    if (child.exitCode !== null) throw new Error(`the sample app exited with code ${child.exitCode}`);
    if (Date.now() > deadline) throw new Error('the sample app did not start within 30 s');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { child, consumed };
}

async function main() {
  await onDatabase(`CREATE SCHEMA "${SCHEMA}"`);
  try {
    await scenario();
  } finally {
    await onDatabase(`DROP SCHEMA IF EXISTS "${SCHEMA}" CASCADE`);
  }
}

async function scenario() {
  const port = await freePort();
  const metricsPort = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const { child, consumed } = await startApp(port, metricsPort);
  const requests = [];
  let expected = 0;
  let rolledBack = 0;

  async function call(method, url, body, status, events) {
    const res = await fetch(base + url, {
      method,
      headers: { 'content-type': 'application/json' },
      body: body && JSON.stringify(body),
    });
    const answer = await res.json();
    const note = res.ok ? `${events} event(s)` : answer.message;
    // The request's trace, as the app's HTTP instrumentation started it (W3C traceresponse).
    const traceId = /^00-([0-9a-f]{32})-/.exec(res.headers.get('traceresponse') || '')?.[1] ?? '-';
    console.log(`${method.padEnd(6)} ${url.padEnd(62)} -> ${res.status} ${String(note).padEnd(10)} trace ${traceId}`);
    requests.push({ method, url, traceId });
    if (res.status !== status) throw new Error(`expected HTTP ${status}, got ${res.status}`);
    expected += events;
    return answer;
  }

  try {
    console.log(`Sample app on ${base}, exchange "${EXCHANGE}" at ${BROKER_URL.replace(/:[^:@/]*@/, ':***@')}`);
    console.log(`Data and outbox in PostgreSQL at ${DATABASE_URL.replace(/:[^:@/]*@/, ':***@')}, schema "${SCHEMA}"\n`);
    const unit = await call('POST', '/org-units', { name: 'Borgerservice', validFrom: '2021-01-01' }, 201, 1);
    const anne = await call('POST', '/employees', { name: 'Anne Jensen' }, 201, 1);
    const engagement = await call(
      'POST',
      '/engagements',
      {
        employeeUuid: anne.uuid,
        orgUnitUuid: unit.uuid,
        jobTitle: 'Caseworker',
        validFrom: '2021-07-27T00:00:00+02:00',
      },
      201,
      2,
    );
    await call(
      'POST',
      '/addresses',
      { employeeUuid: anne.uuid, addressType: 'email', value: 'anne@example.org', validFrom: '2021-08-01' },
      201,
      1,
    );
    await call('PATCH', `/engagements/${engagement.uuid}`, { jobTitle: 'Team lead', validFrom: '2022-01-01' }, 200, 2);
    await call('POST', '/engagements', { employeeUuid: anne.uuid, orgUnitUuid: unit.uuid }, 400, 0);
    await call('PATCH', '/employees/00000000-0000-4000-8000-000000000000', { name: 'Nobody' }, 404, 0);
    await call('DELETE', `/engagements/${engagement.uuid}?validFrom=2023-01-01`, undefined, 200, 2);
    // Anne still has her address: the foreign key fails the COMMIT, after the event was written to
    // the outbox in the same transaction; it is rolled back with the delete and never sent.
    await call('DELETE', `/employees/${anne.uuid}`, undefined, 409, 0);
    rolledBack += 1;

    const deadline = Date.now() + 5_000;
    while (consumed.length < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    console.log(`\nThe app's consumer (bound "#" on "${EXCHANGE}") received ${consumed.length} event(s), by request:`);
    // Each event carries its request's trace in `traceparent`: the consumer prints it, and it groups them here.
    for (const { method, url, traceId } of requests) {
      const mine = consumed.filter((line) => line.endsWith(` trace ${traceId}`));
      if (mine.length === 0) continue;
      console.log(`  ${method} ${url}  (trace ${traceId})`);
      for (const line of mine) console.log(`    ${line.slice(0, -` trace ${traceId}`.length)}`);
    }
    const untraced = consumed.filter((line) => !requests.some((r) => line.endsWith(` trace ${r.traceId}`)));
    if (untraced.length > 0) throw new Error(`events without their request's trace: ${untraced.join('; ')}`);
    if (consumed.length !== expected)
      throw new Error(`expected ${expected} events, the consumer saw ${consumed.length}`);

    // MoEventsService.counters, as GET /health shows them.
    let counters;
    while (true) {
      counters = (await (await fetch(`${base}/health`)).json()).info.events;
      if (counters.relayed >= expected || Date.now() > deadline + 5_000) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    console.log(
      `\nThrough the outbox (${OUTBOX_TABLE}): ${counters.outboxed} event(s) written in their request's ` +
        `transaction, ${counters.outboxed - counters.relayed} rolled back with it, ` +
        `${counters.relayed} relayed to RabbitMQ after the commit, ${counters.published} published directly`,
    );
    if (counters.outboxed !== expected + rolledBack || counters.relayed !== expected || counters.published !== 0)
      throw new Error(`expected ${expected + rolledBack} outboxed, ${expected} relayed and 0 published directly`);

    // The same counters, and the publish-to-confirm time, as OpenTelemetry metrics for Prometheus.
    const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    const exposition = await (await fetch(metricsUrl)).text();
    console.log(`\nFrom ${metricsUrl} (what Prometheus scrapes; counters that are 0 left out):`);
    const shown = exposition
      .split('\n')
      .filter((l) =>
        /^(mo_amqp_events_total|messaging_client_operation_duration_(count|sum)|mo_amqp_spool_events)\{/.test(l),
      )
      .filter((l) => !(l.startsWith('mo_amqp_events_total') && l.endsWith(' 0')))
      .map((l) => l.replace(/,?otel_scope_(name|version)="[^"]*"/g, '').replace('{}', ''));
    for (const line of shown) console.log(`  ${line}`);
    if (!shown.some((l) => l.startsWith('mo_amqp_events_total{mo_amqp_outcome="relayed"}')))
      throw new Error('the metrics do not show the relayed events');
  } finally {
    child.kill('SIGTERM');
    await once(child, 'exit');
  }
}

main().catch((err) => {
  console.error(`demo failed: ${err.message}`);
  process.exit(1);
});
