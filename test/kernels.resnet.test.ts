/**
 * The residual-CNN kernels (asm/resnet.ts) against plain f64 TypeScript references, both builds:
 * batch norm forward (training and evaluation, running statistics) and backward, the option-A
 * shortcut forward/backward, global average pooling. Odd sizes exercise every SIMD tail.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { arenaFor, expectClose, randomFloats, VARIANTS } from "./kernels.harness.ts";


type Floats = ArrayLike<number>;
const EPS = 1e-5;

/** Batch-norm forward in f64: batch or running statistics, y = act(γ·x̂ + β). */
export function batchnormRef(x: Floats, gamma: Floats, beta: Floats, rmean: Floats, rvar: Floats, N: number, C: number, HW: number, training: boolean, momentum: number, relu: boolean) {
  const y = new Float64Array(N * C * HW);
  const mean = new Float64Array(C), invstd = new Float64Array(C);
  const newMean = Float64Array.from(rmean), newVar = Float64Array.from(rvar);
  const M = N * HW;
  for (let c = 0; c < C; c++) {
    let m: number, v: number;
    if (training) {
      let s = 0;
      for (let n = 0; n < N; n++) for (let i = 0; i < HW; i++) s += x[(n * C + c) * HW + i]!;
      m = s / M;
      let q = 0;
      for (let n = 0; n < N; n++) for (let i = 0; i < HW; i++) q += (x[(n * C + c) * HW + i]! - m) ** 2;
      v = q / M;
      if (momentum > 0) {
        newMean[c] = (1 - momentum) * rmean[c]! + momentum * m;
        newVar[c] = (1 - momentum) * rvar[c]! + momentum * (M > 1 ? (v * M) / (M - 1) : v);
      }
    } else {
      m = rmean[c]!;
      v = rvar[c]!;
    }
    mean[c] = m;
    invstd[c] = 1 / Math.sqrt(v + EPS);
    for (let n = 0; n < N; n++) {
      for (let i = 0; i < HW; i++) {
        const j = (n * C + c) * HW + i;
        const o = gamma[c]! * (x[j]! - m) * invstd[c]! + beta[c]!;
        y[j] = relu ? Math.max(0, o) : o;
      }
    }
  }
  return { y, mean, invstd, newMean, newVar };
}

/** Training-mode batch-norm backward in f64 (statistics depend on x). */
export function batchnormBackwardRef(dy: Floats, x: Floats, y: Floats, gamma: Floats, N: number, C: number, HW: number, relu: boolean) {
  const { mean, invstd } = batchnormRef(x, gamma, new Float64Array(C), new Float64Array(C), new Float64Array(C).fill(1), N, C, HW, true, 0, false);
  const M = N * HW;
  const dx = new Float64Array(N * C * HW), dgamma = new Float64Array(C), dbeta = new Float64Array(C);
  const dz = Float64Array.from(dy, (d, j) => (relu && !(y[j]! > 0) ? 0 : d));
  for (let c = 0; c < C; c++) {
    let s1 = 0, s2 = 0;
    for (let n = 0; n < N; n++) {
      for (let i = 0; i < HW; i++) {
        const j = (n * C + c) * HW + i;
        s1 += dz[j]!;
        s2 += dz[j]! * (x[j]! - mean[c]!) * invstd[c]!;
      }
    }
    dgamma[c] = s2;
    dbeta[c] = s1;
    for (let n = 0; n < N; n++) {
      for (let i = 0; i < HW; i++) {
        const j = (n * C + c) * HW + i;
        const xh = (x[j]! - mean[c]!) * invstd[c]!;
        dx[j] = ((gamma[c]! * invstd[c]!) / M) * (M * dz[j]! - s1 - xh * s2);
      }
    }
  }
  return { dx, dgamma, dbeta, dz };
}

export function shortcutRef(y: Floats, x: Floats, N: number, Cin: number, H: number, W: number, Cout: number, stride: number): Float64Array {
  const OH = Math.ceil(H / stride), OW = Math.ceil(W / stride);
  const out = Float64Array.from(y);
  const off = (Cout - Cin) >> 1;
  for (let n = 0; n < N; n++)
    for (let c = 0; c < Cin; c++)
      for (let oh = 0; oh < OH; oh++)
        for (let ow = 0; ow < OW; ow++) out[((n * Cout + c + off) * OH + oh) * OW + ow] += x[((n * Cin + c) * H + oh * stride) * W + ow * stride]!;
  return out;
}

export function shortcutBackwardRef(dx: Floats, dy: Floats, N: number, Cin: number, H: number, W: number, Cout: number, stride: number): Float64Array {
  const OH = Math.ceil(H / stride), OW = Math.ceil(W / stride);
  const out = Float64Array.from(dx);
  const off = (Cout - Cin) >> 1;
  for (let n = 0; n < N; n++)
    for (let c = 0; c < Cin; c++)
      for (let oh = 0; oh < OH; oh++)
        for (let ow = 0; ow < OW; ow++) out[((n * Cin + c) * H + oh * stride) * W + ow * stride] += dy[((n * Cout + c + off) * OH + oh) * OW + ow]!;
  return out;
}

const small = fc.oneof(fc.constantFrom(1, 2, 3, 5, 7), fc.integer({ min: 1, max: 9 }));
const plane = fc.oneof(fc.constantFrom(1, 3, 4, 5, 9, 17, 49), fc.integer({ min: 1, max: 70 }));
const seed = fc.integer({ min: 1, max: 1e9 });

for (const variant of VARIANTS) {
  describe(`residual CNN kernels (${variant} build)`, () => {
    test("batchnorm_forward: batch statistics, running statistics, fused relu", async () => {
      const a = await arenaFor(variant);
      fc.assert(
        fc.property(small, small, plane, fc.boolean(), fc.boolean(), fc.constantFrom(0, 0.1, 0.9), seed, (N, C, HW, training, relu, momentum, s) => {
          a.reset();
          const x = Float32Array.from(randomFloats(N * C * HW, s, 2), (v) => v + 0.5); // a nonzero mean
          const gamma = randomFloats(C, s + 1), beta = randomFloats(C, s + 2), rmean = randomFloats(C, s + 3);
          const rvar = Float32Array.from(randomFloats(C, s + 4), (v) => 0.5 + Math.abs(v));
          const [px, pg, pb, pm, pv] = [x, gamma, beta, rmean, rvar].map((t) => a.put(t)) as [number, number, number, number, number];
          const py = s % 3 === 0 ? px : a.floats(x.length); // y may alias x
          const pstats = a.floats(2 * C);
          a.k.batchnorm_forward(py, pstats, px, pg, pb, pm, pv, N, C, HW, EPS, momentum, training ? 1 : 0, relu ? 1 : 0);
          a.checkGuards();
          const want = batchnormRef(x, gamma, beta, rmean, rvar, N, C, HW, training, momentum, relu);
          // the normalized values are O(1): an absolute tolerance scaled by γ covers single-pass f32 error
          expectClose(a.read(py, x.length), want.y, 1e-4, 1e-4, "y");
          expectClose(a.read(pstats, C), want.mean, 1e-5, 1e-5, "mean");
          expectClose(a.read(pstats + C * 4, C), want.invstd, 1e-4, 1e-5, "invstd");
          expectClose(a.read(pm, C), training ? want.newMean : rmean, 1e-5, 1e-6, "running mean");
          expectClose(a.read(pv, C), training ? want.newVar : rvar, 1e-4, 1e-6, "running var");
        }),
        { numRuns: 80 },
      );
    });

    test("batchnorm_backward: dγ, dβ, dx, relu mask, accumulate", async () => {
      const a = await arenaFor(variant);
      fc.assert(
        fc.property(small, small, plane, fc.boolean(), fc.boolean(), fc.boolean(), seed, (N, C, HW, relu, accumulate, withDx, s) => {
          fc.pre(N * HW > 1);
          a.reset();
          const x = randomFloats(N * C * HW, s, 2);
          const gamma = randomFloats(C, s + 1), beta = randomFloats(C, s + 2);
          const dy = randomFloats(x.length, s + 3);
          const g0 = randomFloats(C, s + 4), b0 = randomFloats(C, s + 5);
          const fwd = batchnormRef(x, gamma, beta, new Float64Array(C), new Float64Array(C), N, C, HW, true, 0, relu);
          const [px, pg, pdy] = [x, gamma, dy].map((t) => a.put(t)) as [number, number, number];
          const py = a.put(Float32Array.from(fwd.y));
          const pstats = a.put([...Float32Array.from(fwd.mean), ...Float32Array.from(fwd.invstd)]);
          const pdg = a.put(g0), pdb = a.put(b0);
          const pdx = withDx ? a.floats(x.length) : 0;
          a.k.batchnorm_backward(pdx, pdg, pdb, pdy, px, py, pstats, pg, N, C, HW, relu ? 1 : 0, accumulate ? 1 : 0);
          a.checkGuards();
          const want = batchnormBackwardRef(dy, x, fwd.y, gamma, N, C, HW, relu);
          const scale = N * HW;
          expectClose(a.read(pdg, C), Array.from(want.dgamma, (v, c) => v + (accumulate ? g0[c]! : 0)), 1e-4, 1e-5 * scale, "dgamma");
          expectClose(a.read(pdb, C), Array.from(want.dbeta, (v, c) => v + (accumulate ? b0[c]! : 0)), 1e-4, 1e-5 * scale, "dbeta");
          expectClose(a.read(pdy, x.length), want.dz, 0, 0, "dz (dy masked in place)");
          if (withDx) expectClose(a.read(pdx, x.length), want.dx, 1e-3, 2e-4, "dx");
        }),
        { numRuns: 80 },
      );
    });

    test("shortcut_forward/backward: option A (strided, zero-padded channels) and the plain residual add", async () => {
      const a = await arenaFor(variant);
      fc.assert(
        fc.property(small, small, fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 13 }), fc.integer({ min: 1, max: 13 }), fc.constantFrom(1, 2), seed, (N, Cin, half, H, W, stride, s) => {
          a.reset();
          const Cout = Cin + 2 * half;
          const OH = Math.ceil(H / stride), OW = Math.ceil(W / stride);
          const x = randomFloats(N * Cin * H * W, s), y = randomFloats(N * Cout * OH * OW, s + 1);
          const px = a.put(x), py = a.put(y);
          a.k.shortcut_forward(py, px, N, Cin, H, W, Cout, stride);
          a.checkGuards();
          expectClose(a.read(py, y.length), shortcutRef(y, x, N, Cin, H, W, Cout, stride), 1e-6, 1e-7, "y");
          const dx = randomFloats(x.length, s + 2), dy = randomFloats(y.length, s + 3);
          const pdx = a.put(dx), pdy = a.put(dy);
          a.k.shortcut_backward(pdx, pdy, N, Cin, H, W, Cout, stride);
          a.checkGuards();
          expectClose(a.read(pdx, x.length), shortcutBackwardRef(dx, dy, N, Cin, H, W, Cout, stride), 1e-6, 1e-7, "dx");
          expectClose(a.read(pdy, y.length), dy, 0, 0, "dy untouched");
        }),
        { numRuns: 80 },
      );
    });

    test("global_avgpool forward/backward", async () => {
      const a = await arenaFor(variant);
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 40 }), plane, seed, (planes, HW, s) => {
          a.reset();
          const x = randomFloats(planes * HW, s);
          const py = a.floats(planes);
          a.k.global_avgpool_forward(py, a.put(x), planes, HW);
          const want = Array.from({ length: planes }, (_, p) => x.subarray(p * HW, (p + 1) * HW).reduce((u, v) => u + v, 0) / HW);
          expectClose(a.read(py, planes), want, 1e-5, 1e-6, "y");
          const dy = randomFloats(planes, s + 1);
          const pdx = a.floats(planes * HW);
          a.k.global_avgpool_backward(pdx, a.put(dy), planes, HW);
          a.checkGuards();
          expectClose(a.read(pdx, planes * HW), Array.from({ length: planes * HW }, (_, i) => dy[Math.floor(i / HW)]! / HW), 1e-6, 0, "dx");
        }),
        { numRuns: 60 },
      );
    });
  });
}

test("batch norm in evaluation mode leaves the running statistics alone", async () => {
  const a = await arenaFor("relaxed");
  a.reset();
  const rm = a.put([0.5, -1]), rv = a.put([2, 0.25]);
  a.k.batchnorm_forward(a.floats(6), a.floats(4), a.put([1, 2, 3, 4, 5, 6]), a.put([1, 1]), a.put([0, 0]), rm, rv, 1, 2, 3, EPS, 0.1, 0, 0);
  expect(Array.from(a.read(rm, 2))).toEqual([0.5, -1]);
  expect(Array.from(a.read(rv, 2))).toEqual([2, 0.25]);
});
