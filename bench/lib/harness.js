const { median, percentile } = require('./stats');

/**
 * Runs each contender `rounds` times, rotating the order every round so each
 * takes every position equally often (none always runs first, on a fresher
 * broker, or last), after a warm-up round that is not counted. `measure(contender)` returns `{ figure: value }`
 * for one run; the result holds each contender's median per figure, and every sample.
 */
async function alternate(contenders, rounds, measure, { warmup = 1 } = {}) {
  const samples = Object.fromEntries(contenders.map((c) => [c.name, []]));
  for (let round = -warmup; round < rounds; round++) {
    const shift = ((round % contenders.length) + contenders.length) % contenders.length;
    const order = [...contenders.slice(shift), ...contenders.slice(0, shift)];
    for (const contender of order) {
      const figures = await measure(contender);
      if (round >= 0) samples[contender.name].push(figures);
    }
  }
  const medians = {};
  for (const [name, runs] of Object.entries(samples)) {
    medians[name] = {};
    for (const figure of Object.keys(runs[0])) medians[name][figure] = median(runs.map((r) => r[figure]));
  }
  return { medians, samples };
}

/**
 * Calls `task()` `count` times with at most `concurrency` in flight and returns
 * `msg/s` and `cpu µs/msg`; with `latency`, also the p50 and p99 of each call, in milliseconds.
 */
async function run(count, concurrency, task, { latency = false } = {}) {
  const latencies = latency ? new Array(count) : undefined;
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      if (latencies) {
        const t0 = process.hrtime.bigint();
        await task();
        latencies[i] = Number(process.hrtime.bigint() - t0) / 1e6;
      } else {
        await task();
      }
    }
  };
  const started = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const { user, system } = process.cpuUsage(cpu);
  // This process's CPU per message: the part of the cost the library controls,
  // and less noisy than throughput on a machine the broker shares.
  const figures = { 'msg/s': count / seconds, 'cpu µs/msg': (user + system) / count };
  if (latencies) {
    figures['p50 ms'] = percentile(latencies, 50);
    figures['p99 ms'] = percentile(latencies, 99);
  }
  return figures;
}

module.exports = { alternate, run };
