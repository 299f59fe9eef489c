/**
 * A small seeded PRNG (mulberry32) for tests that draw random inputs: the seed
 * comes from `TEST_SEED` when set, else is fresh, and a spec names it (in its
 * test name or failure message) so a failure can be replayed with
 * `TEST_SEED=<seed> npx jest <spec>`.
 */
export interface SeededRandom {
  readonly seed: number;
  /** A float in [0, 1), as Math.random. */
  next(): number;
  /** A whole number in [min, max]. */
  int(min: number, max: number): number;
}

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** The seed of this run: `TEST_SEED` (a whole number from 0 to 2^32 - 1) or a fresh one. */
export function testSeed(env: NodeJS.ProcessEnv = process.env): number {
  const given = env.TEST_SEED?.trim();
  if (given === undefined || given === '') return Math.floor(Math.random() * 2 ** 32);
  const seed = Number(given);
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) {
    throw new Error(`TEST_SEED: received "${given}"; allowed: a whole number from 0 to ${2 ** 32 - 1}`);
  }
  return seed;
}

export function seededRandom(seed = testSeed()): SeededRandom {
  const next = mulberry32(seed);
  return { seed, next, int: (min, max) => min + Math.floor(next() * (max - min + 1)) };
}
