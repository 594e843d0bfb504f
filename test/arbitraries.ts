/**
 * fast-check generators for test data. Properties draw the data itself, so a failure shrinks to a
 * small array of small values, not to a seed that a PRNG expanded into data nobody can read.
 */
import fc from "fast-check";

/** Steps per unit: values lie on a grid of 1/GRID (exact in f32, no subnormals, no NaN). */
const GRID = 4096;

/** `n` floats in [−scale, scale] on a grid of scale/4096; they shrink toward 0. */
export const floats = (n: number, scale = 1): fc.Arbitrary<Float32Array> =>
  fc.array(fc.integer({ min: -GRID, max: GRID }), { minLength: n, maxLength: n }).map((a) => Float32Array.from(a, (v) => (v / GRID) * scale));

/** `n` integers in [0, bound). */
export const ints = (n: number, bound: number): fc.Arbitrary<Int32Array> =>
  fc.array(fc.integer({ min: 0, max: bound - 1 }), { minLength: n, maxLength: n }).map((a) => Int32Array.from(a));

/** `n` whole numbers in [lo, hi] as f32 (coarse values, so ties happen); they shrink toward 0. */
export const wholeFloats = (n: number, lo: number, hi: number): fc.Arbitrary<Float32Array> =>
  fc.array(fc.integer({ min: lo, max: hi }), { minLength: n, maxLength: n }).map((a) => Float32Array.from(a));
