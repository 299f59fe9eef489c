// OpenTelemetry: "without an SDK everything is a no-op and costs nothing measurable".
// MoEventsService.publish at concurrency 100, as in the publish scenario, in three
// mo-amqp processes of their own, same messages, same run:
//   'mo-amqp, API absent'     @opentelemetry/api made unloadable (bench/lib/hide-otel.js): the
//                             library behaves as if the optional peer were not installed
//   'mo-amqp, API, no SDK'    the API installed, no SDK registered: its no-op tracer,
//                             propagator and meter
//   'mo-amqp, SDK recording'  for scale: the Node tracing SDK and a MeterProvider registered,
//                             every span and measurement recorded, then dropped (bench/lib/otel-sdk.js)
// The three children collect garbage on their main thread (--single-threaded-gc). With V8's
// parallel scavenger, on a machine of two CPUs the broker shares, a process now and then
// ran a whole run at 1.5× the CPU per message of an identical one (its GC helper threads'
// time, three to five times the others'), API or none: that, not the library, decided the
// comparison. Garbage the library makes is still collected, and billed, in the process that made it.
const { alternate } = require('../lib/harness');
const { forkPublisher } = require('../lib/publisher-process');

const ABSENT = 'mo-amqp, API absent';
const NO_SDK = 'mo-amqp, API, no SDK';
const SDK = 'mo-amqp, SDK recording';
const COUNT = 20_000;
const CONCURRENCY = 100;
const GC = '--single-threaded-gc';

const VARIANTS = [
  { name: ABSENT, telemetry: 'API absent', execArgv: [GC, '--require', require.resolve('../lib/hide-otel')] },
  { name: NO_SDK, telemetry: 'no SDK', execArgv: [GC] },
  { name: SDK, telemetry: 'SDK', execArgv: [GC, '--require', require.resolve('../lib/otel-sdk')] },
];

// "Nothing measurable": no further apart than identical processes are. Three identical
// children (API absent, or API without SDK), 12 rounds, five runs: their medians of CPU per
// message at most 5% apart, of throughput 7% (21% once, while other work loaded the machine).
// So: throughput at least 0.93 of the API-absent one's; CPU per message at most 1.06× its
// (its ÷ ours ≥ 0.94).
const SAME_RATE = 0.93;
const SAME_CPU = 0.94;

module.exports = [
  {
    title: `OpenTelemetry, publish, concurrency ${CONCURRENCY}`,
    async run({ url, exchange, purge, rounds }) {
      const contenders = [];
      try {
        for (const variant of VARIANTS) {
          const contender = await forkPublisher('mo-amqp', url, exchange, variant);
          contenders.push(contender);
          if (contender.telemetry !== variant.telemetry)
            throw new Error(`${variant.name}: the library found ${contender.telemetry}, not ${variant.telemetry}`);
        }
        return await alternate(contenders, rounds, async (c) => {
          await purge();
          return c.measure(COUNT, CONCURRENCY);
        });
      } finally {
        for (const contender of contenders) await contender.close();
      }
    },
    ours: NO_SDK,
    targets: [
      { ours: NO_SDK, figure: 'msg/s', baseline: ABSENT, atLeast: SAME_RATE },
      { ours: NO_SDK, figure: 'cpu µs/msg', baseline: ABSENT, atLeast: SAME_CPU },
      // What recording costs: information, no target.
      { ours: SDK, figure: 'msg/s', baseline: ABSENT },
      { ours: SDK, figure: 'cpu µs/msg', baseline: ABSENT },
    ],
  },
];
