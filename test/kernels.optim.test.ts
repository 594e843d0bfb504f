/**
 * Optimizer, vector and data kernels against the f64 references (both builds), plus the module's
 * shape (no data section, no mutable globals, only env.memory imported) and the loader's choices.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { readFileSync } from "node:fs";
import { checkModuleShape } from "../asm/build.ts";
import { kernelPath } from "../engine/kernels/build.ts";
import { chooseVariant, supportsRelaxedSimd } from "../engine/kernels/load.ts";
import { floats, ints } from "./arbitraries.ts";
import { arenaFor, expectClose, VARIANTS } from "./kernels.harness.ts";
import * as ref from "./reference.ts";

/** Element counts around the 4-lane (and 16-float) main loops. */
const count = fc.oneof(fc.constantFrom(0, 1, 3, 4, 5, 7, 15, 16, 17, 33, 64, 65), fc.integer({ min: 0, max: 300 }));
/** A count, then `k` vectors of that many floats in [−scale, scale] (the data shrinks with the count). */
const vectors = (k: number, scale = 1) => count.chain((n) => fc.tuple(fc.constant(n), fc.array(floats(n, scale), { minLength: k, maxLength: k })));
/** A hyperparameter in [min, max] on a grid of 1000 steps (no subnormals, no NaN). */
const hyper = (min: number, max: number) => fc.integer({ min: 0, max: 1000 }).map((i) => min + ((max - min) * i) / 1000);

for (const variant of VARIANTS) {
  describe(`optimizers (${variant} build)`, () => {
    test("sgd_update", async () => {
      const a = await arenaFor(variant);
      fc.assert(
        fc.property(vectors(2), hyper(0, 1), hyper(0, 0.1), ([n, [w, g]], lr, wd) => {
          a.reset();
          const pw = a.put(w);
          a.k.sgd_update(pw, a.put(g), n, lr, wd);
          a.checkGuards();
          // The absolute term bounds f32 rounding of lr·(g + wd·w) (terms up to about 1.1, a few ulps):
          // where w and the step nearly cancel, a relative bound on the small result would not hold.
          expectClose(a.read(pw, n), ref.sgdUpdate(w, g, Math.fround(lr), Math.fround(wd)), 1e-6, 4e-7, "w");
        }),
        { numRuns: 60 },
      );
    });

    test("momentum_update, plain and Nesterov, with dampening and weight decay", async () => {
      const a = await arenaFor(variant);
      fc.assert(
        fc.property(vectors(3), hyper(0, 1), hyper(0, 0.99), hyper(0, 0.5), hyper(0, 0.1), fc.boolean(), ([n, [w, g, m]], lr, mu, damp, wd, nesterov) => {
          a.reset();
          const pw = a.put(w), pm = a.put(m);
          a.k.momentum_update(pw, a.put(g), pm, n, lr, mu, damp, wd, nesterov ? 1 : 0);
          a.checkGuards();
          const f = Math.fround;
          const want = ref.momentumUpdate(w, g, m, f(lr), f(mu), f(damp), f(wd), nesterov);
          expectClose(a.read(pm, n), want.m, 1e-6, 1e-6, "m");
          expectClose(a.read(pw, n), want.w, 1e-6, 1e-6, "w");
        }),
        { numRuns: 60 },
      );
    });

    test("adam_update: Adam (L2) and AdamW (decoupled), bias corrections", async () => {
      const a = await arenaFor(variant);
      fc.assert(
        fc.property(vectors(4), hyper(1e-4, 0.1), hyper(0, 0.1), fc.boolean(), fc.integer({ min: 1, max: 1000 }), ([n, [w, g, m01, vRoot]], lr, wd, decoupled, t) => {
          a.reset();
          const [b1, b2, eps] = [0.9, 0.999, 1e-8];
          const m = Float32Array.from(m01, (x) => x * 0.1);
          const v = Float32Array.from(vRoot, (x) => x * x * 0.01);
          const bc1 = 1 - b1 ** t, bc2 = 1 - b2 ** t;
          const pw = a.put(w), pm = a.put(m), pv = a.put(v);
          a.k.adam_update(pw, a.put(g), pm, pv, n, lr, b1, b2, eps, wd, decoupled ? 1 : 0, bc1, bc2);
          a.checkGuards();
          const f = Math.fround;
          const adam = (grad: Float32Array | Float64Array) => ref.adamUpdate(w, grad, m, v, f(lr), f(b1), f(b2), f(eps), f(wd), decoupled, f(bc1), f(bc2));
          const want = adam(g);
          expectClose(a.read(pm, n), want.m, 1e-5, 1e-7, "m");
          expectClose(a.read(pv, n), want.v, 1e-5, 1e-9, "v");
          // The step is lr·m̂/(√v̂+ε), up to ~lr·(1/(1−β1ᵗ)) in size: judge w by its change. With L2
          // decay the kernel forms g' = g + wd·w in f32 (two roundings, each within 2⁻²⁴ of its terms);
          // where g and wd·w nearly cancel, m̂/(√v̂+ε) turns on that rounding (for m = v = 0 it is
          // g'/(|g'|+ε)), so w is also allowed what the reference gives with g' moved by that much.
          const slack = Float64Array.from(g, (gi, i) => (decoupled ? 0 : 2 ** -23 * (Math.abs(gi) + Math.abs(f(wd) * w[i]!))));
          const [low, high] = [adam(Float64Array.from(g, (gi, i) => gi - slack[i]!)).w, adam(Float64Array.from(g, (gi, i) => gi + slack[i]!)).w];
          const got = a.read(pw, n);
          for (let i = 0; i < n; i++) {
            const moved = Math.max(Math.abs(low[i]! - want.w[i]!), Math.abs(high[i]! - want.w[i]!));
            const bound = 1e-5 * Math.abs(want.w[i]!) + 1e-5 * f(lr) / f(bc1) + 1e-7 + moved;
            if (!(Math.abs(got[i]! - want.w[i]!) <= bound)) throw new Error(`w[${i}] = ${got[i]} but reference ${want.w[i]} (|err| ${Math.abs(got[i]! - want.w[i]!).toExponential(2)}, allowed ${bound.toExponential(2)})`);
          }
        }),
        { numRuns: 60 },
      );
    });

    test("rmsprop_update", async () => {
      const a = await arenaFor(variant);
      fc.assert(
        fc.property(vectors(3), hyper(1e-4, 0.1), hyper(0.5, 0.999), hyper(0, 0.1), ([n, [w, g, vRoot]], lr, alpha, wd) => {
          a.reset();
          const v = Float32Array.from(vRoot, (x) => x * x);
          const pw = a.put(w), pv = a.put(v);
          a.k.rmsprop_update(pw, a.put(g), pv, n, lr, alpha, 1e-8, wd);
          a.checkGuards();
          const f = Math.fround;
          const want = ref.rmspropUpdate(w, g, v, f(lr), f(alpha), f(1e-8), f(wd));
          expectClose(a.read(pv, n), want.v, 1e-5, 1e-9, "v");
          expectClose(a.read(pw, n), want.w, 1e-5, 1e-5 * f(lr) + 1e-7, "w");
        }),
        { numRuns: 60 },
      );
    });
  });

  describe(`optimizer state never subnormal (${variant} build)`, () => {
    const subnormal = (x: number) => x !== 0 && Math.abs(x) < ref.FLT_MIN;
    const f = Math.fround;

    // With g = 0 (a dead unit), m ← 0.9·m rounds 2⁻¹⁴⁹ back to 2⁻¹⁴⁹: without the flush the momentum of
    // such a parameter stays subnormal forever, and every later update pays x86's microcode assists.
    test("m ← μ·m with g = 0: below the smallest normal float it is stored as 0, above it kept exactly", async () => {
      const a = await arenaFor(variant);
      const m = Float32Array.of(2 ** -149, 4 * 2 ** -149, -1e-39, 1.05 * ref.FLT_MIN, 2 * ref.FLT_MIN, -3 * ref.FLT_MIN, 1e-3, 0);
      const n = m.length;
      const pw = a.put(new Float32Array(n).fill(0.5)), pm = a.put(m);
      a.k.momentum_update(pw, a.put(new Float32Array(n)), pm, n, 0.02, 0.9, 0, 0, 0);
      a.checkGuards();
      const want = Array.from(m, (x) => (Math.abs(0.9 * x) < ref.FLT_MIN ? 0 : f(f(0.9) * x)));
      expect(Array.from(a.read(pm, n))).toEqual(want);
      expect(Array.from(a.read(pw, n))).toEqual(new Array(n).fill(0.5).map((w, i) => f(w - f(0.02) * want[i]!)));
    });

    test("momentum, Adam and RMSprop from any state, subnormals included, store no subnormal state", async () => {
      const a = await arenaFor(variant);
      const tinyVector = (n: number) => fc.array(fc.float({ min: Math.fround(-1e-36), max: Math.fround(1e-36), noNaN: true }), { minLength: n, maxLength: n });
      fc.assert(
        fc.property(
          count.chain((n) => fc.tuple(fc.constant(n), tinyVector(n), tinyVector(n), tinyVector(n))),
          fc.boolean(),
          ([n, g, m, v01], zeroGradient) => {
            a.reset();
            const grad = zeroGradient ? new Float32Array(n) : Float32Array.from(g);
            const v = Float32Array.from(v01, Math.abs);
            const w = new Float32Array(n).fill(0.25);
            const pm = a.put(m);
            a.k.momentum_update(a.put(w), a.put(grad), pm, n, 0.01, 0.9, 0, 0, 0);
            const [am, av] = [a.put(m), a.put(v)];
            a.k.adam_update(a.put(w), a.put(grad), am, av, n, 1e-3, 0.9, 0.999, 1e-8, 0, 0, 0.1, 0.001);
            const rv = a.put(v);
            a.k.rmsprop_update(a.put(w), a.put(grad), rv, n, 1e-3, 0.99, 1e-8, 0);
            a.checkGuards();
            for (const [name, p] of [["momentum m", pm], ["adam m", am], ["adam v", av], ["rmsprop v", rv]] as const) {
              const bad = Array.from(a.read(p, n)).findIndex(subnormal);
              if (bad >= 0) throw new Error(`${name}[${bad}] = ${a.read(p, n)[bad]} is subnormal`);
            }
          },
        ),
        { numRuns: 60 },
      );
    });
  });

  describe(`vector ops (${variant} build)`, () => {
    test("axpy, scale, copy, fill_zero", async () => {
      const a = await arenaFor(variant);
      fc.assert(
        fc.property(vectors(2), hyper(-2, 2), ([n, [x, y]], alpha) => {
          a.reset();
          const px = a.put(x), py = a.put(y);
          a.k.axpy(py, px, n, alpha);
          expectClose(a.read(py, n), ref.axpy(y, x, Math.fround(alpha)), 1e-6, 1e-7, "axpy");
          a.k.scale(px, n, alpha);
          expectClose(a.read(px, n), ref.scale(x, Math.fround(alpha)), 1e-6, 0, "scale");
          const pc = a.floats(n);
          a.k.copy(pc, px, n);
          expect(a.read(pc, n)).toEqual(a.read(px, n));
          a.k.fill_zero(pc, n);
          expect(Array.from(a.read(pc, n))).toEqual(new Array(n).fill(0));
          a.checkGuards();
        }),
        { numRuns: 60 },
      );
    });

    test("weighted_sum, including out aliasing one of its inputs", async () => {
      const a = await arenaFor(variant);
      const sums = fc.integer({ min: 1, max: 6 }).chain((k) => fc.tuple(count.chain((n) => fc.tuple(fc.constant(n), fc.array(floats(n), { minLength: k, maxLength: k }))), floats(k)));
      fc.assert(
        fc.property(sums, fc.integer({ min: -1, max: 5 }), ([[n, tensors], weights], aliasAt) => {
          a.reset();
          const k = tensors.length;
          const ptrs = tensors.map((t) => a.put(t));
          const out = aliasAt >= 0 && aliasAt < k ? ptrs[aliasAt]! : a.floats(n);
          a.k.weighted_sum(out, a.putI32(ptrs), a.put(weights), k, n);
          a.checkGuards();
          expectClose(a.read(out, n), ref.weightedSum(tensors, weights, n), 1e-5, 1e-6 * k, "out");
        }),
        { numRuns: 60 },
      );
    });

    test("squared_distance accumulates in f64", async () => {
      const a = await arenaFor(variant);
      fc.assert(
        fc.property(vectors(2, 100), ([n, [x, y]]) => {
          a.reset();
          const px = a.put(x), py = a.put(y);
          expect(a.k.squared_distance(px, py, n)).toBeCloseTo(ref.squaredDistance(x, y), 6);
        }),
        { numRuns: 60 },
      );
      // f64 accumulation: a million ones plus one tiny difference stays exact
      a.reset();
      const n = 1 << 20;
      const ones = new Float32Array(n).fill(1);
      const p = a.put(ones);
      const q = a.put(ones);
      new Float32Array(a.memory.buffer, q, n)[n - 1] = 1 + 2 ** -20;
      expect(a.k.squared_distance(p, q, n)).toBe(2 ** -40);
    });
  });

  describe(`data (${variant} build)`, () => {
    test("gather_batch: u8 → f32 with scale and shift, labels widened", async () => {
      const a = await arenaFor(variant);
      fc.assert(
        fc.property(
          fc.tuple(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 0, max: 12 }), fc.oneof(fc.constantFrom(1, 15, 16, 17, 33, 784), fc.integer({ min: 1, max: 70 }))).chain(([samples, count, sampleBytes]) =>
            fc.record({ sampleBytes: fc.constant(sampleBytes), count: fc.constant(count), bytes: fc.uint8Array({ minLength: samples * sampleBytes, maxLength: samples * sampleBytes }), labelBytes: fc.uint8Array({ minLength: samples, maxLength: samples }), indices: ints(count, samples) }),
          ),
          ({ sampleBytes, count, bytes, labelBytes, indices }) => {
            a.reset();
            const scale = 1 / 255, shift = -0.5;
            const pout = a.floats(count * sampleBytes);
            const plab = a.alloc(count * 4);
            a.k.gather_batch(pout, plab, a.putU8(bytes), a.putU8(labelBytes), a.putI32(indices), count, sampleBytes, scale, shift);
            a.checkGuards();
            const want = ref.gatherBatch(bytes, labelBytes, indices, sampleBytes, Math.fround(scale), Math.fround(shift));
            expectClose(a.read(pout, count * sampleBytes), want.out, 1e-6, 1e-7, "out");
            expect(Array.from(a.readI32(plab, count))).toEqual(Array.from(want.labels));
          }),
        { numRuns: 60 },
      );
    });
  });
}

describe("kernel module", () => {
  for (const variant of VARIANTS) {
    test(`${variant} build: no data section, no mutable globals, imports only env.memory`, () => {
      const bytes = new Uint8Array(readFileSync(kernelPath(variant)));
      expect(() => checkModuleShape(bytes, variant)).not.toThrow();
      const module = new WebAssembly.Module(bytes);
      expect(WebAssembly.Module.imports(module)).toEqual([{ module: "env", name: "memory", kind: "memory" }]);
      const exported = WebAssembly.Module.exports(module).map((e) => e.name).sort();
      for (const name of ["gemm_nn", "gemm_nt", "gemm_tn", "softmax_xent", "conv2d_backward", "adam_update", "gather_batch", "fma_ceiling"]) {
        expect(exported).toContain(name);
      }
    });
  }

  test("checkModuleShape rejects data segments and mutable globals", () => {
    const header = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
    // global section: one mutable i32 initialised to 0
    const mutableGlobal = new Uint8Array([...header, 0x06, 0x06, 0x01, 0x7f, 0x01, 0x41, 0x00, 0x0b]);
    expect(() => checkModuleShape(mutableGlobal, "g")).toThrow(/mutable/);
    const immutableGlobal = new Uint8Array([...header, 0x06, 0x06, 0x01, 0x7f, 0x00, 0x41, 0x0b, 0x0b]);
    expect(() => checkModuleShape(immutableGlobal, "g")).not.toThrow();
    // data count section is enough to be refused
    const data = new Uint8Array([...header, 0x0c, 0x01, 0x00]);
    expect(() => checkModuleShape(data, "d")).toThrow(/data section/);
  });

  test("relaxed-SIMD probe and SKEIN_KERNELS", () => {
    // The probe must answer what the real relaxed build answers on this runtime: a probe that
    // fails to validate (wrong bytes) would pick plain SIMD on a runtime that runs relaxed kernels.
    const relaxedBuildValidates = WebAssembly.validate(readFileSync(kernelPath("relaxed")));
    expect(supportsRelaxedSimd()).toBe(relaxedBuildValidates);
    expect(WebAssembly.validate(readFileSync(kernelPath("simd")))).toBe(true);
    expect(chooseVariant("simd")).toBe("simd");
    expect(chooseVariant("")).toBe(supportsRelaxedSimd() ? "relaxed" : "simd");
    if (supportsRelaxedSimd()) expect(chooseVariant("relaxed")).toBe("relaxed");
    expect(() => chooseVariant("avx")).toThrow(/SKEIN_KERNELS/);
  });
});
