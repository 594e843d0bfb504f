/**
 * How work is divided among workers: contiguous, deterministic splits (the same split in every run, so
 * results do not depend on thread timing).
 */

/** Contiguous split of `count` items into `parts`, the first ones one larger: [lo, hi) of part p. */
export function shardOf(count: number, parts: number, p: number): { lo: number; hi: number } {
  const base = Math.floor(count / parts);
  const extra = count % parts;
  const lo = p * base + Math.min(p, extra);
  return { lo, hi: lo + base + (p < extra ? 1 : 0) };
}

/** Like shardOf over a float vector, in units of 16 floats so every slice starts 64-byte aligned. */
export function alignedSliceOf(floats: number, parts: number, p: number): { lo: number; hi: number } {
  const { lo, hi } = shardOf(Math.ceil(floats / 16), parts, p);
  return { lo: Math.min(lo * 16, floats), hi: Math.min(hi * 16, floats) };
}
