import type { Options } from 'amqplib';
import type { Delivery } from './agent-channel';

/** A message the agent holds in memory, unacknowledged, until it is due: what forwarding it takes, no more. */
export interface Held {
  /** Epoch ms: forwarded at this time, never before. */
  readonly due: number;
  readonly routingKey: string;
  /** A copy of the body: amqplib's may be a slice of a much larger read buffer. */
  readonly content: Buffer;
  /** The forwarded copy's properties: the original's. */
  readonly properties: Options.Publish;
  readonly delivery: Delivery;
}

/**
 * The messages held until due, earliest first (a binary heap), with one timer
 * for the earliest. `onDue` gets each once its time has come by the wall clock:
 * a timer that fires a little early waits again.
 */
export class HeldMessages {
  private readonly heap: Held[] = [];
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;

  constructor(private readonly onDue: (held: Held) => void) {}

  get size(): number {
    return this.heap.length;
  }

  add(held: Held): void {
    const heap = this.heap;
    let i = heap.push(held) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent].due <= held.due) break;
      heap[i] = heap[parent];
      i = parent;
    }
    heap[i] = held;
    if (held.due < this.timerAt) this.arm();
  }

  /** Takes every message out (shutdown: they go back to their queue). */
  drain(): Held[] {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
    return this.heap.splice(0);
  }

  /** Keeps only the messages `keep` accepts (after a channel closed, its deliveries come again). */
  retain(keep: (held: Held) => boolean): void {
    const kept = this.drain().filter(keep);
    for (const held of kept) this.add(held);
  }

  private arm(): void {
    clearTimeout(this.timer);
    const next = this.heap[0];
    if (!next) {
      this.timer = undefined;
      this.timerAt = Infinity;
      return;
    }
    this.timerAt = next.due;
    this.timer = setTimeout(this.fire, Math.max(0, next.due - Date.now()));
  }

  private readonly fire = (): void => {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = Date.now();
    while (this.heap.length > 0 && this.heap[0].due <= now) this.onDue(this.pop());
    this.arm();
  };

  private pop(): Held {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop() as Held;
    if (heap.length > 0) {
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        if (left >= heap.length) break;
        const right = left + 1;
        const child = right < heap.length && heap[right].due < heap[left].due ? right : left;
        if (heap[child].due >= last.due) break;
        heap[i] = heap[child];
        i = child;
      }
      heap[i] = last;
    }
    return top;
  }
}
