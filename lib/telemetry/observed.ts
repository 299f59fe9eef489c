import type { Attributes } from '@opentelemetry/api';
import { Shared, observeEach, outcomeValues } from './metrics';

/** What a spool shows the meter (the runtime's `SpoolView`). */
interface SpoolView {
  readonly bytes: number;
  readonly records: number;
  readonly oldestSpooledAt: number | undefined;
}

/** What the runtime shows the meter: its counters (`MoEventCounters`) and its spool. */
export interface RuntimeView {
  readonly counters: object;
  readonly spoolStats: SpoolView | undefined;
}

/** What the delay agent shows the meter. */
interface AgentView {
  readonly stats: { readonly holding: number } & object;
}

const runtimes: Shared<RuntimeView> = { views: new Set() };
const agents: Shared<AgentView> = { views: new Set() };

/** Each key's values added up over the views (every app of the process). */
function summed<V>(views: ReadonlySet<V>, read: (view: V) => object): Record<string, number> {
  const sum: Record<string, number> = {};
  for (const view of views) {
    for (const [key, value] of Object.entries(read(view))) sum[key] = (sum[key] ?? 0) + (value as number);
  }
  return sum;
}

/**
 * The runtime's counters as `mo_amqp.events{mo_amqp.outcome}` and its spool as
 * `mo_amqp.spool.*`, read at each collection (the process's runtimes added up).
 * Returns what removes this one.
 */
export function observeRuntime(view: RuntimeView): () => void {
  return observeEach(runtimes, view, (views) => {
    const spools = () => [...views].flatMap((v) => (v.spoolStats ? [v.spoolStats] : []));
    // Observed as 0 without a spool too: a stopped app's figure must not stay behind as the last one seen.
    const spooled = (read: (stats: SpoolView) => number): [number, Attributes][] => [
      [spools().reduce((sum, stats) => sum + read(stats), 0), {}],
    ];
    return [
      {
        name: 'mo_amqp.events',
        unit: '{event}',
        description: 'MO events of this process by outcome (published, confirmed, spooled, failed, retried, …)',
        kind: 'counter',
        read: () => outcomeValues(summed(views, (v) => v.counters)),
      },
      {
        name: 'mo_amqp.spool.size',
        unit: 'By',
        description: 'Bytes the spool holds (events waiting for the broker)',
        kind: 'updowncounter',
        read: () => spooled((stats) => stats.bytes),
      },
      {
        name: 'mo_amqp.spool.events',
        unit: '{event}',
        description: 'Events waiting in the spool',
        kind: 'updowncounter',
        read: () => spooled((stats) => stats.records),
      },
      {
        name: 'mo_amqp.spool.oldest_age',
        unit: 's',
        description: 'How long the oldest event in the spool has waited (0 when none waits)',
        kind: 'gauge',
        read: () => {
          const first = Math.min(...spools().map((stats) => stats.oldestSpooledAt ?? Infinity));
          return [[first === Infinity ? 0 : Math.max(0, Date.now() - first) / 1000, {}]];
        },
      },
    ];
  });
}

/** The delay agent's counts as `mo_amqp.delay.messages{mo_amqp.outcome}` and what it holds now. */
export function observeDelayAgent(view: AgentView): () => void {
  return observeEach(agents, view, (views) => [
    {
      name: 'mo_amqp.delay.messages',
      unit: '{message}',
      description: 'Messages the delay agent passed on, by outcome (forwarded, parked, laddered, dead_lettered)',
      kind: 'counter',
      read: () => {
        const { holding: _holding, ...counts } = summed(views, (v) => v.stats);
        return outcomeValues(counts);
      },
    },
    {
      name: 'mo_amqp.delay.held',
      unit: '{message}',
      description: 'Messages the delay agent holds in memory until their second',
      kind: 'updowncounter',
      read: () => [[summed(views, (v) => v.stats).holding ?? 0, {}]],
    },
  ]);
}
