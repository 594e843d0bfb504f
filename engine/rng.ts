/**
 * The one random number generator of the engine: xoshiro128** seeded through splitmix32.
 *
 * Why this one: 32-bit arithmetic only (Math.imul, no BigInt), so it is fast in JS and gives the same
 * stream on every platform; 128 bits of state is plenty for shuffles and weight init.
 *
 * Reproducibility rule: never thread one Rng through a whole run. Derive a fresh stream for each
 * purpose from the run seed and labels — `Rng.derive(seed, "epoch", 7)`, `Rng.derive(seed, "init",
 * "dense0")` — so that what one consumer draws never shifts another, and a resumed run replays the
 * same epoch order without replaying epochs 0..6.
 */

const TWO_POW_32 = 4294967296;

/** splitmix32-style finalizer (murmur3 fmix32): a bijective avalanche of one 32-bit word. */
function fmix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/** Folds one 32-bit word into a running hash; order-sensitive, so ("a", 1) ≠ (1, "a"). */
function absorb(h: number, word: number): number {
  return fmix32((h ^ fmix32((word + 0x9e3779b9) | 0)) + 0x7f4a7c15);
}

/**
 * Folds any number into the hash. Integers are split into low/high 32-bit halves (seeds may be
 * larger than 2^32); other numbers (fractions, NaN, ±Infinity) go in as their float64 bits.
 */
function absorbNumber(h: number, x: number): number {
  if (Number.isSafeInteger(x)) {
    const neg = x < 0 ? 1 : 0;
    const mag = Math.abs(x);
    h = absorb(h, 0x6e756d00 | neg); // type tag "num" + sign
    h = absorb(h, mag >>> 0);
    return absorb(h, Math.floor(mag / TWO_POW_32) >>> 0);
  }
  const bits = new Uint32Array(new Float64Array([x]).buffer);
  h = absorb(h, 0x666c7400); // type tag "flt"
  h = absorb(h, bits[0]!);
  return absorb(h, bits[1]!);
}

function absorbString(h: number, s: string): number {
  h = absorb(h, 0x73747200); // type tag "str"
  h = absorb(h, s.length);
  for (let i = 0; i < s.length; i++) h = absorb(h, s.charCodeAt(i));
  return h;
}

export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** Seeds the four state words from any number with splitmix32, as the xoshiro authors advise. */
  constructor(seed: number) {
    let sm = absorbNumber(0x2545f491, seed);
    const next = (): number => {
      sm = (sm + 0x9e3779b9) | 0;
      return fmix32(sm);
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    // The all-zero state is xoshiro's one fixed point; splitmix outputs make it practically
    // impossible, but a fixed point would silently return zeros forever, so guard anyway.
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /**
   * An independent stream that depends only on (seed, ...labels). Labels are hashed with their type,
   * so `derive(s, 1)` and `derive(s, "1")` differ, as do `derive(s, "ab")` and `derive(s, "a", "b")`.
   */
  static derive(seed: number, ...labels: (number | string)[]): Rng {
    let h = absorbNumber(0x51ed270b, seed);
    h = absorb(h, labels.length);
    for (const label of labels) h = typeof label === "string" ? absorbString(h, label) : absorbNumber(h, label);
    return new Rng(h);
  }

  /** The raw state, for checkpoints: `Rng.fromState(rng.state())` continues the same stream. */
  state(): [number, number, number, number] {
    return [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0];
  }

  static fromState(words: readonly [number, number, number, number]): Rng {
    if (words.every((w) => (w | 0) === 0)) throw new RangeError("Rng.fromState: the all-zero state is invalid");
    const rng = new Rng(0);
    [rng.s0, rng.s1, rng.s2, rng.s3] = words.map((w) => w | 0) as [number, number, number, number];
    return rng;
  }

  /** A uniform 32-bit unsigned integer (xoshiro128**). */
  nextU32(): number {
    const s1 = this.s1;
    const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9);
    const t = s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result >>> 0;
  }

  /** Uniform in [0, 1) with 2^-32 resolution (as a double; never exactly 1). */
  nextFloat(): number {
    return this.nextU32() / TWO_POW_32;
  }

  /** Uniform integer in [0, n), unbiased (rejects the top partial block of 2^32). n in [1, 2^32]. */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > TWO_POW_32) throw new RangeError(`Rng.int: n must be an integer in [1, 2^32], got ${n}`);
    const limit = TWO_POW_32 - (TWO_POW_32 % n);
    for (;;) {
      const x = this.nextU32();
      if (x < limit) return x % n;
    }
  }

  /** A standard normal sample (Box–Muller; one of the pair is discarded so the state stays 4 words). */
  normal(): number {
    const u1 = 1 - this.nextFloat(); // (0, 1]: log(0) would give -Infinity
    const u2 = this.nextFloat();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /** Fills `out` with normal(mean, std) samples, using both Box–Muller outputs (weight init speed). */
  fillNormal(out: Float32Array | Float64Array, mean = 0, std = 1): void {
    let i = 0;
    for (; i + 1 < out.length; i += 2) {
      const r = Math.sqrt(-2 * Math.log(1 - this.nextFloat()));
      const theta = 2 * Math.PI * this.nextFloat();
      out[i] = mean + std * r * Math.cos(theta);
      out[i + 1] = mean + std * r * Math.sin(theta);
    }
    if (i < out.length) out[i] = mean + std * this.normal();
  }

  /**
   * A Gamma(shape, 1) sample, shape > 0 (Marsaglia–Tsang; shape < 1 via the x·U^(1/shape) boost).
   * Dirichlet partitions are normalized Gamma draws.
   */
  gamma(shape: number): number {
    if (!(shape > 0) || !Number.isFinite(shape)) throw new RangeError(`Rng.gamma: shape must be positive and finite, got ${shape}`);
    if (shape < 1) {
      const u = 1 - this.nextFloat();
      return this.gamma(shape + 1) * Math.pow(u, 1 / shape);
    }
    const d = shape - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      let x: number;
      let v: number;
      do {
        x = this.normal();
        v = 1 + c * x;
      } while (v <= 0);
      v = v * v * v;
      const u = 1 - this.nextFloat();
      if (u < 1 - 0.0331 * x * x * x * x) return d * v;
      if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
    }
  }

  /** Fisher–Yates shuffle; every permutation equally likely. */
  shuffleInPlace<T extends { length: number; [i: number]: number }>(a: T): T {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = a[i]!;
      a[i] = a[j]!;
      a[j] = tmp;
    }
    return a;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
