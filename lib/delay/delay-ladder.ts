/**
 * The delay ladder: pending messages wait in RabbitMQ itself.
 *
 * Queue k of LEVELS holds a message for exactly 2^k seconds (one `x-message-ttl`
 * per queue, so no message ever waits behind a longer one) and then dead-letters
 * it into router k, a headers exchange. A message carries its remaining whole
 * seconds as one header per bit; router k sends it straight to the queue of the
 * next lower set bit, or to the "due" queue when no lower bit is set. The entry
 * router does the same over all bits. A pass covers up to 2^LEVELS - 1 seconds
 * (about 17 years); a longer delay goes round again from the due queue.
 */

/** RabbitMQ 3.10 accepts an `x-message-ttl` of 2^28 s, not 2^29 s: levels 0..28. */
export const LEVELS = 29;
export const MAX_PASS_SECONDS = 2 ** LEVELS - 1;

/**
 * The bit headers must not start with "x-": a headers exchange ignores such
 * headers when matching, so every binding would match and each message would be
 * copied into every queue. (Learnt the hard way: the broker ran out of memory.)
 */
export const BIT_HEADER_PREFIX = 'mo-delay-b';
export const DELAY_HEADER_PREFIX = 'x-mo-delay-';
export const DUE_HEADER = 'x-mo-delay-due';
export const ROUTING_KEY_HEADER = 'x-mo-delay-routing-key';
export const EXCHANGE_HEADER = 'x-mo-delay-exchange';
export const META_HEADER = 'x-mo-delay-meta';

const BIT_HEADERS = Array.from({ length: LEVELS }, (_, level) => `${BIT_HEADER_PREFIX}${level}`);

export function bitHeader(level: number): string {
  return BIT_HEADERS[level];
}

/**
 * Delays up to a minute wait in one of these queues instead of the ladder: the
 * queue of their due second (modulo the count), which the agent consumes from
 * just before that second until just after it. 64 > 60 s + that margin, so a
 * queue is never consumed while messages of its next round are written to it.
 */
export const HOLD_SLOTS = 64;
export const MAX_HOLD_MS = 60_000;

/** The hold queue of a due time (epoch ms). */
export function holdSlotOf(due: number): number {
  return Math.floor(due / 1000) % HOLD_SLOTS;
}

/** The names of everything the agent declares, from one prefix. */
export interface DelayTopology {
  readonly incoming: string;
  readonly due: string;
  readonly deadLetter: string;
  readonly entryRouter: string;
  waitQueue(level: number): string;
  router(level: number): string;
  holdQueue(slot: number): string;
}

export function delayTopology(prefix: string): DelayTopology {
  const two = (level: number) => String(level).padStart(2, '0');
  return {
    incoming: `${prefix}.incoming`,
    due: `${prefix}.due`,
    deadLetter: `${prefix}.dlq`,
    entryRouter: `${prefix}.route.entry`,
    waitQueue: (level) => `${prefix}.wait.${two(level)}`,
    router: (level) => `${prefix}.route.${two(level)}`,
    holdQueue: (slot) => `${prefix}.hold.${two(slot)}`,
  };
}

/** The bit headers of a number of seconds (capped at one pass: the rest goes round again). */
export function secondsToBitHeaders(seconds: number): Record<string, string> {
  const capped = Math.min(Math.max(0, Math.floor(seconds)), MAX_PASS_SECONDS);
  const headers: Record<string, string> = {};
  for (let level = 0; level < LEVELS; level++) {
    headers[BIT_HEADERS[level]] = Math.floor(capped / 2 ** level) % 2 === 1 ? '1' : '0';
  }
  return headers;
}

/** One `x-match: all` binding of a router: its destination and the headers it requires. */
export interface LadderBinding {
  /** A wait level, or 'due'. */
  readonly to: number | 'due';
  readonly args: Record<string, string>;
}

/**
 * The bindings of the router that receives messages leaving level `from`
 * (`LEVELS` for the entry router, which considers every bit): to the highest
 * set bit below `from`, or to "due" when all of those are 0.
 */
export function routerBindings(from: number): LadderBinding[] {
  const bindings: LadderBinding[] = [];
  for (let to = from - 1; to >= 0; to--) {
    const args: Record<string, string> = { 'x-match': 'all', [bitHeader(to)]: '1' };
    for (let higher = to + 1; higher < from; higher++) args[bitHeader(higher)] = '0';
    bindings.push({ to, args });
  }
  const due: Record<string, string> = { 'x-match': 'all' };
  for (let level = 0; level < from; level++) due[bitHeader(level)] = '0';
  bindings.push({ to: 'due', args: due });
  return bindings;
}

/** Where a message with these bit headers goes from router `from`: what RabbitMQ computes. */
export function route(from: number, headers: Record<string, string>): number | 'due' {
  for (let to = from - 1; to >= 0; to--) if (headers[bitHeader(to)] === '1') return to;
  return 'due';
}
