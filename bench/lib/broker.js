// What a run costs the broker, measured from outside it: the CPU time of its
// Erlang VM (beam.smp) from /proc, and how often messages were written into
// each queue, from the management API. Linux only; elsewhere the figures are NaN.
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');

const { broker } = require('../../scripts/brokers');

// With BROKER set (scripts/brokers.js), that version's node and its management port.
const MANAGEMENT_URL =
  process.env.RABBITMQ_MANAGEMENT_URL || `http://127.0.0.1:${process.env.BROKER ? broker().managementPort : 15672}`;
const MANAGEMENT_AUTH = `Basic ${Buffer.from(process.env.RABBITMQ_MANAGEMENT_USER || 'guest:guest').toString('base64')}`;
// The broker emits queue statistics every 5 s (collect_statistics_interval).
const STATS_INTERVAL_MS = 5_000;

// An idle rate above this share of a core: the broker was not quiet.
const BUSY_IDLE = 0.1;
// CPU seconds in one second below which the broker is taken as quiet.
const QUIET = 0.05;
const SETTLE_MS = 6_000;
const SETTLE_MAX_MS = 20_000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let ticks;
function clockTicks() {
  if (ticks === undefined) {
    try {
      ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

/**
 * The process listening on the broker URL's port: on this machine other
 * beam.smp processes may run (the cluster and TLS nodes of scripts/), so it is
 * found by its listening socket, not by name. Undefined when it cannot be read.
 * Of a comma-separated list (a cluster's URLs), the first.
 */
function brokerPid(url) {
  try {
    const first = new URL(url.split(',')[0].trim());
    const port = Number(first.port || (first.protocol === 'amqps:' ? 5671 : 5672));
    const inodes = new Set();
    for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
      if (!fs.existsSync(table)) continue;
      for (const line of fs.readFileSync(table, 'utf8').split('\n').slice(1)) {
        const f = line.trim().split(/\s+/);
        // local address "hex:hexport", state 0A = LISTEN, inode in column 10
        if (f.length > 9 && f[3] === '0A' && parseInt(f[1].split(':')[1], 16) === port) inodes.add(`socket:[${f[9]}]`);
      }
    }
    if (inodes.size === 0) return undefined;
    for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
      let fds;
      try {
        fds = fs.readdirSync(`/proc/${pid}/fd`);
      } catch {
        continue; // gone, or not ours to read
      }
      for (const fd of fds) {
        try {
          if (inodes.has(fs.readlinkSync(`/proc/${pid}/fd/${fd}`))) return Number(pid);
        } catch {
          // closed meanwhile
        }
      }
    }
  } catch {
    // not Linux
  }
  return undefined;
}

/**
 * The broker process of every URL of a comma-separated list: the nodes of a
 * cluster on this machine. Empty when one of them cannot be found.
 */
function brokerPids(url) {
  const pids = url.split(',').map((one) => brokerPid(one));
  return pids.includes(undefined) ? [] : [...new Set(pids)];
}

/** The process's user + system CPU seconds so far, all threads (utime + stime of /proc/<pid>/stat). */
function cpuSeconds(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name in parentheses may hold spaces: count fields after its ")".
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / clockTicks();
}

/**
 * Meters the broker's CPU over a stretch of work: `idle(ms)` waits until it has
 * settled, then measures its rate with nothing of ours going on (it still runs
 * timers, statistics, other clients), `start()` and `stop()` bracket the work; `perMessage(n)` is the CPU
 * of the work above that idle rate ÷ n, in µs. Of a comma-separated list of URLs (a cluster on this
 * machine), the sum over its nodes' processes; `peakCores()` is the highest CPU over any 5 s of the
 * work, in cores (1 = one core busy), idle rate included.
 */
function brokerMeter(url) {
  const pids = brokerPids(url);
  const nodes = Math.max(1, pids.length);
  const cpu = () => pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
  let idleRate = NaN;
  let startedAt;
  let startedCpu;
  let used = NaN;
  let seconds = NaN;
  let samples = [];
  let sampler;
  const now = () => Number(process.hrtime.bigint()) / 1e9;
  return {
    pid: pids[0],
    pids,
    async idle(ms) {
      if (pids.length === 0) return;
      // After new queues and consumers the broker is busy for seconds (declarations,
      // then the first statistics of each queue about 5 s later): let that pass, then
      // wait for a quiet second, so it is not taken for its idle rate.
      const settled = now() + SETTLE_MS / 1000;
      const giveUp = settled + SETTLE_MAX_MS / 1000;
      for (;;) {
        const c = cpu();
        await sleep(1_000);
        if ((now() >= settled && cpu() - c < QUIET * nodes) || now() >= giveUp) break;
      }
      const t0 = now();
      const c0 = cpu();
      await sleep(ms);
      idleRate = (cpu() - c0) / (now() - t0);
    },
    start() {
      if (pids.length === 0) return;
      startedAt = now();
      startedCpu = cpu();
      samples = [[startedAt, startedCpu]];
      sampler = setInterval(() => samples.push([now(), cpu()]), 1_000);
    },
    stop() {
      if (pids.length === 0) return;
      clearInterval(sampler);
      seconds = now() - startedAt;
      used = cpu() - startedCpu;
      samples.push([startedAt + seconds, startedCpu + used]);
    },
    perMessage: (n) => ((used - idleRate * seconds) / n) * 1e6,
    /** CPU over the work in cores, idle rate included. */
    cores: () => used / seconds,
    peakCores: () => peakRate(samples),
    describe() {
      if (pids.length === 0) return 'broker process not found';
      const peak = peakRate(samples);
      const line =
        `beam.smp ${pids.join(' + ')}: ${used.toFixed(2)} s CPU in ${seconds.toFixed(1)} s, ` +
        `idle ${(idleRate * 100).toFixed(1)} %${Number.isNaN(peak) ? '' : `, peak ${(peak * 100).toFixed(0)} %`}`;
      // Idle, the local broker takes about 1 % of a core: much more means other clients were at
      // work, and whatever they did during the run is billed to these messages.
      return idleRate > BUSY_IDLE * nodes
        ? `${line} of a core: NOT QUIET, the per-message figure is unreliable`
        : `${line} of a core`;
    },
  };
}

/**
 * The highest rate over any `windowS` seconds of cumulative readings `[time, value]`
 * taken about once a second: the busiest stretch of a run, for CPU in cores.
 */
function peakRate(samples, windowS = 5) {
  let peak = NaN;
  for (let i = 0, j = 0; j < samples.length; j++) {
    while (samples[j][0] - samples[i + 1]?.[0] >= windowS) i++;
    const dt = samples[j][0] - samples[i][0];
    if (dt >= windowS * 0.8) peak = Math.max(Number.isNaN(peak) ? 0 : peak, (samples[j][1] - samples[i][1]) / dt);
  }
  return peak;
}

/**
 * How many messages have entered each queue whose name starts with `prefix`:
 * a classic queue's next_seq_id, which counts every enqueue, published or
 * dead-lettered (message_stats.publish counts only what channels publish: a
 * message a TTL dead-letters into a queue is not in it). Undefined for a queue
 * without one (a quorum queue). Throws when the management API does not answer.
 */
async function enqueued(prefix, vhost = '/') {
  const res = await fetch(
    `${MANAGEMENT_URL}/api/queues/${encodeURIComponent(vhost)}?columns=name,backing_queue_status.next_seq_id`,
    { headers: { authorization: MANAGEMENT_AUTH } },
  );
  if (!res.ok) throw new Error(`${MANAGEMENT_URL}/api/queues: HTTP ${res.status}`);
  const counts = new Map();
  for (const q of await res.json()) {
    if (q.name.startsWith(prefix)) counts.set(q.name, q.backing_queue_status?.next_seq_id);
  }
  return counts;
}

/**
 * `enqueued(prefix)` once the statistics have caught up: the broker publishes
 * them every 5 s, so read until two readings a full interval apart agree.
 */
async function settledEnqueued(prefix, { maxMs = 40_000 } = {}) {
  const deadline = Date.now() + maxMs;
  let last = JSON.stringify([...(await enqueued(prefix))]);
  for (;;) {
    await sleep(STATS_INTERVAL_MS + 1_000);
    const counts = await enqueued(prefix);
    const now = JSON.stringify([...counts]);
    if (now === last || Date.now() > deadline) return counts;
    last = now;
  }
}

module.exports = { brokerMeter, brokerPid, brokerPids, cpuSeconds, enqueued, peakRate, settledEnqueued };
