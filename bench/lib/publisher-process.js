// Each publish contender in a process of its own, so the CPU it reports is its
// own: in one shared process, garbage one contender made was collected during
// another's run and billed to it. The parent keeps the alternating rounds; a
// child sets its publisher up once, then runs one measured loop per request
// (bench/lib/harness.js `run`: msg/s, its own process.cpuUsage() ÷ messages,
// latencies) and reports the figures back.
const { forkChild } = require('./child');

const KINDS = ['mo-amqp', 'raw amqplib', 'raw amqplib, body per message', 'golevelup'];

/**
 * Starts the contender `kind` in a child process. Resolves with
 * `{ name, telemetry, measure(count, concurrency, options), close() }`; mo-amqp's also has
 * `decorated` and `handWritten`, each `{ name, measure }`, run in the same child.
 * `name` replaces the contender's own (two children of one kind side by side);
 * `execArgv`, Node options for the child (`--require` a file it loads first, say).
 * `telemetry` is what the library found in the child: 'API absent', 'no SDK' or
 * 'SDK' (spans recorded).
 */
async function forkPublisher(kind, url, exchange, { name, execArgv = [] } = {}) {
  if (!KINDS.includes(kind)) throw new Error(`unknown publisher ${kind}`);
  const { ready, request, close } = await forkChild(__filename, [kind, url, exchange], name ?? kind, {}, execArgv);
  const measure =
    (task) =>
    async (count, concurrency, { latency = false } = {}) =>
      (await request({ run: { task, count, concurrency, latency } })).figures;
  const publisher = { name: name ?? ready.name, telemetry: ready.telemetry, measure: measure('publish'), close };
  for (const [task, name] of Object.entries(ready.tasks)) publisher[task] = { name, measure: measure(task) };
  return publisher;
}

async function child() {
  const [kind, url, exchange] = process.argv.slice(2);
  const { golevelup, moAmqp, rawAmqplib, rawAmqplibPerMessage } = require('./contenders');
  const { run } = require('./harness');
  const factory = {
    'mo-amqp': moAmqp,
    'raw amqplib': rawAmqplib,
    'raw amqplib, body per message': rawAmqplibPerMessage,
    golevelup,
  }[kind];
  const contender = await factory(url, exchange);
  const tasks = { publish: contender };
  if (contender.decorated) Object.assign(tasks, { decorated: contender.decorated, handWritten: contender.handWritten });
  // The parent gone (it failed, or was stopped): nothing to report to.
  process.on('disconnect', () => process.exit(1));
  process.on('message', async ({ run: job, close }) => {
    try {
      if (close) {
        await contender.close();
        process.exit(0);
      }
      const figures = await run(job.count, job.concurrency, tasks[job.task].publish, { latency: job.latency });
      process.send({ figures });
    } catch (err) {
      process.send({ error: err.stack || err.message });
    }
  });
  const extra = Object.fromEntries(Object.entries(tasks).flatMap(([t, c]) => (t === 'publish' ? [] : [[t, c.name]])));
  process.send({ name: contender.name, tasks: extra, telemetry: telemetry() });
}

/** What the library's telemetry found in this process: no API, the API's no-ops, or an SDK that records. */
function telemetry() {
  const { otel } = require('../../dist/telemetry/otel');
  if (!otel) return 'API absent';
  const probe = otel.trace.getTracer('bench').startSpan('probe');
  const recording = probe.isRecording();
  probe.end();
  return recording ? 'SDK' : 'no SDK';
}

if (require.main === module) {
  child().catch((err) => {
    console.error(`bench publisher failed: ${err.stack || err.message}`);
    process.exit(1);
  });
}

module.exports = { forkPublisher };
