/**
 * Kernels whose rounding is part of their contract, checked bit for bit against plain TypeScript that
 * performs the same f32 operations in the same order (Math.fround after every operation). Training is
 * bitwise reproducible only while a kernel's order of additions stays put, so a faster version of one
 * of these must keep it, and these tests say so where the f64 references (kernels.*.test.ts) could not.
 *
 * The plain SIMD build multiplies and adds with two roundings, as the emulation does; the relaxed
 * build may fuse them (platform's choice), so the products' sums are checked bitwise on the plain
 * build only. gather_batch multiplies and adds unfused in both builds.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { convColsFloats } from "../engine/kernels/abi.ts";
import { floats, ints } from "./arbitraries.ts";
import { arenaFor, VARIANTS } from "./kernels.harness.ts";
import { convOutSize, type ConvDims } from "./reference.ts";

const f = Math.fround;
/** a·b + c as the plain build's madd computes it: the product rounded, then the sum. */
const madd = (a: number, b: number, c: number) => f(f(a * b) + c);

/** The im2col matrix of sample n: [(ci, kh, kw)][(oh, ow)], 0 in the padding. */
function im2col(x: Float32Array, d: ConvDims, n: number): Float32Array {
  const { OH, OW } = convOutSize(d);
  const cols = new Float32Array(d.Cin * d.KH * d.KW * OH * OW);
  let i = 0;
  for (let ci = 0; ci < d.Cin; ci++)
    for (let kh = 0; kh < d.KH; kh++)
      for (let kw = 0; kw < d.KW; kw++)
        for (let oh = 0; oh < OH; oh++)
          for (let ow = 0; ow < OW; ow++, i++) {
            const ih = oh * d.stride - d.pad + kh;
            const iw = ow * d.stride - d.pad + kw;
            cols[i] = ih < 0 || ih >= d.H || iw < 0 || iw >= d.W ? 0 : x[((n * d.Cin + ci) * d.H + ih) * d.W + iw]!;
          }
  return cols;
}

/**
 * conv2d_backward's weight gradient in its order: per sample, each dw element gets one dot product of
 * dy's row with cols' row along the OH·OW positions: four lanes of partial sums (position t into
 * lane t mod 4) over the whole groups of four, the lanes added as (l0 + l1) + (l2 + l3), the last
 * positions one by one, and the dot added to dw.
 */
function convWeightGradient(dy: Float32Array, x: Float32Array, d: ConvDims, dw0: Float32Array | null): Float32Array {
  const { OH, OW } = convOutSize(d);
  const P = OH * OW;
  const CKK = d.Cin * d.KH * d.KW;
  const dw = dw0 ? Float32Array.from(dw0) : new Float32Array(d.Cout * CKK);
  const whole = P & ~3;
  for (let n = 0; n < d.N; n++) {
    const cols = im2col(x, d, n);
    for (let co = 0; co < d.Cout; co++) {
      const g = (n * d.Cout + co) * P;
      for (let j = 0; j < CKK; j++) {
        const lanes = [0, 0, 0, 0];
        for (let t = 0; t < whole; t++) lanes[t & 3] = madd(dy[g + t]!, cols[j * P + t]!, lanes[t & 3]!);
        let sum = f(f(lanes[0]! + lanes[1]!) + f(lanes[2]! + lanes[3]!));
        for (let t = whole; t < P; t++) sum = f(sum + f(dy[g + t]! * cols[j * P + t]!));
        dw[co * CKK + j] = f(dw[co * CKK + j]! + sum);
      }
    }
  }
  return dw;
}

const convDims: fc.Arbitrary<ConvDims> = fc
  .record({
    N: fc.integer({ min: 1, max: 2 }),
    Cin: fc.integer({ min: 1, max: 3 }),
    H: fc.integer({ min: 1, max: 12 }),
    W: fc.integer({ min: 1, max: 12 }),
    Cout: fc.integer({ min: 1, max: 9 }),
    KH: fc.integer({ min: 1, max: 5 }),
    KW: fc.integer({ min: 1, max: 5 }),
    stride: fc.integer({ min: 1, max: 2 }),
    pad: fc.integer({ min: 0, max: 2 }),
  })
  .filter((d) => d.H + 2 * d.pad >= d.KH && d.W + 2 * d.pad >= d.KW);

/** conv2d_forward in its order: each output, from 0, a multiply-add per tap (ci, kh, kw) in order. */
function convForward(x: Float32Array, w: Float32Array, d: ConvDims): Float32Array {
  const { OH, OW } = convOutSize(d);
  const P = OH * OW;
  const CKK = d.Cin * d.KH * d.KW;
  const y = new Float32Array(d.N * d.Cout * P);
  for (let n = 0; n < d.N; n++) {
    const cols = im2col(x, d, n);
    for (let co = 0; co < d.Cout; co++)
      for (let p = 0; p < P; p++) {
        let s = 0;
        for (let k = 0; k < CKK; k++) s = madd(w[co * CKK + k]!, cols[k * P + p]!, s);
        y[(n * d.Cout + co) * P + p] = s;
      }
  }
  return y;
}

/**
 * Stride-1 convolutions whose output rows are whole vectors (OW = 8, 12, 16, 20 or 28): the direct
 * path, which reads the padded sample in place of the im2col matrix.
 */
const directDims: fc.Arbitrary<ConvDims> = fc
  .record({
    N: fc.integer({ min: 1, max: 2 }),
    Cin: fc.integer({ min: 1, max: 3 }),
    OH: fc.integer({ min: 1, max: 6 }),
    OW: fc.constantFrom(8, 12, 16, 20, 28),
    Cout: fc.integer({ min: 1, max: 9 }),
    KH: fc.integer({ min: 1, max: 5 }),
    KW: fc.integer({ min: 1, max: 5 }),
    pad: fc.integer({ min: 0, max: 2 }),
  })
  .map(({ OH, OW, ...d }) => ({ ...d, stride: 1, H: OH + d.KH - 1 - 2 * d.pad, W: OW + d.KW - 1 - 2 * d.pad }))
  .filter((d) => d.H >= 1 && d.W >= 1);

describe("conv2d forward and weight gradient, both paths (simd build)", () => {
  const cases = fc.oneof(
    { arbitrary: directDims, weight: 2 },
    {
      arbitrary: fc
        .record({ N: fc.integer({ min: 1, max: 2 }), Cin: fc.integer({ min: 1, max: 3 }), H: fc.integer({ min: 1, max: 12 }), W: fc.integer({ min: 1, max: 12 }), Cout: fc.integer({ min: 1, max: 9 }), KH: fc.integer({ min: 1, max: 5 }), KW: fc.integer({ min: 1, max: 5 }), stride: fc.integer({ min: 1, max: 2 }), pad: fc.integer({ min: 0, max: 2 }) })
        .filter((d) => d.H + 2 * d.pad >= d.KH && d.W + 2 * d.pad >= d.KW),
      weight: 1,
    },
  );
  const LENET_CONV1: ConvDims = { N: 2, Cin: 1, H: 28, W: 28, Cout: 6, KH: 5, KW: 5, stride: 1, pad: 2 };

  function check(a: Awaited<ReturnType<typeof arenaFor>>, d: ConvDims, x: Float32Array, w: Float32Array, dy: Float32Array, dw0: Float32Array, accumulate: boolean, withDx: boolean): void {
    a.reset();
    const { OH, OW } = convOutSize(d);
    const CKK = d.Cin * d.KH * d.KW;
    const cols = a.floats(convColsFloats(d.Cin, d.KH, d.KW, OH, OW, d.Cout));
    const px = a.put(x), pw = a.put(w);
    const py = a.floats(d.N * d.Cout * OH * OW);
    a.k.conv2d_forward(py, px, pw, d.N, d.Cin, d.H, d.W, d.Cout, d.KH, d.KW, d.stride, d.pad, cols, 0);
    a.checkGuards();
    expect(Array.from(a.read(py, d.N * d.Cout * OH * OW))).toEqual(Array.from(convForward(x, w, d)));
    const pdw = accumulate ? a.put(dw0) : a.floats(d.Cout * CKK);
    const pdx = withDx ? a.floats(x.length) : 0;
    a.k.conv2d_backward(pdx, pdw, a.put(dy), px, pw, d.N, d.Cin, d.H, d.W, d.Cout, d.KH, d.KW, d.stride, d.pad, accumulate ? 1 : 0, cols, 0);
    a.checkGuards();
    expect(Array.from(a.read(pdw, d.Cout * CKK))).toEqual(Array.from(convWeightGradient(dy, x, d, accumulate ? dw0 : null)));
  }

  test("y and dw equal their order of f32 operations bit for bit (direct and im2col paths, with and without dx)", async () => {
    const a = await arenaFor("simd");
    fc.assert(
      fc.property(
        cases.chain((d) => {
          const { OH, OW } = convOutSize(d);
          const w = d.Cout * d.Cin * d.KH * d.KW;
          return fc.record({ d: fc.constant(d), x: floats(d.N * d.Cin * d.H * d.W), w: floats(w), dy: floats(d.N * d.Cout * OH * OW), dw0: floats(w), accumulate: fc.boolean(), withDx: fc.boolean() });
        }),
        ({ d, x, w, dy, dw0, accumulate, withDx }) => check(a, d, x, w, dy, dw0, accumulate, withDx),
      ),
      { numRuns: 80 },
    );
  });

  test("LeNet's first convolution (1 → 6, 5×5, padding 2, 28×28)", async () => {
    const a = await arenaFor("simd");
    const d = LENET_CONV1;
    const r = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => f((((i * 7919 + seed * 104729) % 8191) - 4095) / 4096));
    check(a, d, r(d.N * 784, 1), r(6 * 25, 2), r(d.N * 6 * 784, 3), r(6 * 25, 4), true, false);
  });
});

describe("conv2d_backward's weight gradient (simd build)", () => {
  test("equals its order of f32 operations bit for bit: lanes of partial sums, lanes pairwise, tail, add", async () => {
    const a = await arenaFor("simd");
    fc.assert(
      fc.property(
        convDims.chain((d) => {
          const { OH, OW } = convOutSize(d);
          const w = d.Cout * d.Cin * d.KH * d.KW;
          return fc.record({ d: fc.constant(d), x: floats(d.N * d.Cin * d.H * d.W), dy: floats(d.N * d.Cout * OH * OW), dw0: floats(w), accumulate: fc.boolean() });
        }),
        ({ d, x, dy, dw0, accumulate }) => {
          a.reset();
          const { OH, OW } = convOutSize(d);
          const CKK = d.Cin * d.KH * d.KW;
          const w = new Float32Array(d.Cout * CKK).fill(0.5); // read only by the input gradient, not asked for
          const pdw = accumulate ? a.put(dw0) : a.floats(d.Cout * CKK);
          const cols = a.floats(convColsFloats(d.Cin, d.KH, d.KW, OH, OW, d.Cout));
          a.k.conv2d_backward(0, pdw, a.put(dy), a.put(x), a.put(w), d.N, d.Cin, d.H, d.W, d.Cout, d.KH, d.KW, d.stride, d.pad, accumulate ? 1 : 0, cols, 0);
          a.checkGuards();
          const want = convWeightGradient(dy, x, d, accumulate ? dw0 : null);
          expect(Array.from(a.read(pdw, d.Cout * CKK))).toEqual(Array.from(want));
        },
      ),
      { numRuns: 80 },
    );
  });
});

for (const variant of VARIANTS) {
  describe(`gather_batch (${variant} build)`, () => {
    test("out = fround(fround(byte·scale) + shift) bit for bit, rows in pairs and a last odd row, labels widened", async () => {
      const a = await arenaFor(variant);
      fc.assert(
        fc.property(
          fc.tuple(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 0, max: 9 }), fc.oneof(fc.constantFrom(1, 15, 16, 17, 33, 784), fc.integer({ min: 1, max: 70 }))).chain(([samples, count, sampleBytes]) =>
            fc.record({
              sampleBytes: fc.constant(sampleBytes),
              bytes: fc.uint8Array({ minLength: samples * sampleBytes, maxLength: samples * sampleBytes }),
              labelBytes: fc.uint8Array({ minLength: samples, maxLength: samples }),
              indices: ints(count, samples),
              shift: fc.constantFrom(0, -0.5, 0.1307),
            }),
          ),
          ({ sampleBytes, bytes, labelBytes, indices, shift }) => {
            a.reset();
            const count = indices.length;
            const scale = f(1 / 255);
            const pout = a.floats(count * sampleBytes);
            const plab = a.alloc(count * 4);
            a.k.gather_batch(pout, plab, a.putU8(bytes), a.putU8(labelBytes), a.putI32(indices), count, sampleBytes, scale, shift);
            a.checkGuards();
            const want = new Float32Array(count * sampleBytes);
            for (let i = 0; i < count; i++)
              for (let j = 0; j < sampleBytes; j++) want[i * sampleBytes + j] = f(f(bytes[indices[i]! * sampleBytes + j]! * scale) + f(shift));
            expect(Array.from(a.read(pout, count * sampleBytes))).toEqual(Array.from(want));
            expect(Array.from(a.readI32(plab, count))).toEqual(Array.from(indices, (i) => labelBytes[i]!));
          },
        ),
        { numRuns: 60 },
      );
    });
  });
}

describe("weighted_sum (simd build)", () => {
  test("out = Σ_i weights[i]·tensors[i] from 0 in input order, bit for bit, for k = 1…4 (k = 2 has its own loop), out aliasing input 0 or not", async () => {
    const a = await arenaFor("simd");
    fc.assert(
      fc.property(
        fc.tuple(fc.integer({ min: 1, max: 4 }), fc.oneof(fc.constantFrom(1, 15, 16, 17, 64), fc.integer({ min: 1, max: 80 }))).chain(([k, n]) =>
          fc.record({ n: fc.constant(n), tensors: fc.array(floats(n), { minLength: k, maxLength: k }), weights: fc.array(fc.constantFrom(1, 0.5, -0.25, 0.1), { minLength: k, maxLength: k }), alias: fc.boolean() }),
        ),
        ({ n, tensors, weights, alias }) => {
          a.reset();
          const ptrs = tensors.map((t) => a.put(t));
          const out = alias ? ptrs[0]! : a.floats(n);
          a.k.weighted_sum(out, a.putI32(ptrs), a.put(weights), tensors.length, n);
          a.checkGuards();
          const want = new Float32Array(n);
          for (let j = 0; j < n; j++) {
            let s = 0;
            tensors.forEach((t, i) => (s = madd(f(weights[i]!), t[j]!, s)));
            want[j] = s;
          }
          expect(Array.from(a.read(out, n))).toEqual(Array.from(want));
        },
      ),
      { numRuns: 80 },
    );
  });
});
