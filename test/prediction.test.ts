/**
 * Weight prediction on the kernels (asm/predict.ts through predictWeights), against the optimizer
 * kernels themselves and a plain-TypeScript formula:
 *  - each kernel computes Ŵ = W − lr·s·Δ as written, on odd sizes too (tails);
 *  - Δ_t is the direction update t took: predicting one step from W_{t−1} with the state after update
 *    t gives W_t, for every optimizer (weight decay 0), after any gradients;
 *  - with a constant gradient, predicting s ahead equals running s more updates: SGD and Adam from
 *    step 1 on, momentum / Nesterov once m = g/(1−μ), RMSprop once v = g²;
 *  - nothing is written at s = 0 or before the first update;
 *  - SpecTrain's s by hand; PipeOptim's s, annotated on the schedule it runs, is the number of updates
 *    its stage applies between each F and its B (D − k − 1 in asynchronous 1F1B's steady state).
 * That the runtime uses these predictions (and that they help) is checked in pipeline.test.ts: the
 * executor equals a reference calling the same kernels, and PipeOptim's measured inconsistency is
 * below that of the same run without prediction.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { predictWeights, spectrainSteps } from "../engine/algorithms/pipeline/prediction.ts";
import { asyncOneFOneB } from "../engine/algorithms/pipeline/schedule.ts";
import { annotate, updatesBetweenForwardAndBackward } from "../engine/algorithms/pipeline/strategies.ts";
import { applyUpdate, defaultOptimizer, OPTIMIZERS, type OptimizerConfig, type OptimizerKind, type UpdateRegion } from "../engine/optim/optimizer.ts";
import { randomFloats, testMemory } from "./helpers.ts";

const mem = testMemory(16);
const { k } = mem;

interface Vectors {
  region: UpdateRegion;
  out: number;
  n: number;
}

function vectors(n: number, seed: number): Vectors {
  const w = mem.put(randomFloats(n, seed));
  const g = mem.put(randomFloats(n, seed + 1));
  const m = mem.put(randomFloats(n, seed + 2, 0.1));
  const v = mem.put(randomFloats(n, seed + 3).map((x) => x * x * 0.01));
  return { region: { w, g, m, v, n }, out: mem.floats(n), n };
}

/** Ŵ by the formula, in f64 (the kernels round in f32). */
function formula(cfg: OptimizerConfig, x: Vectors, s: number, step: number): Float64Array {
  const w = mem.read(x.region.w, x.n);
  const g = mem.read(x.region.g, x.n);
  const m = mem.read(x.region.m, x.n);
  const v = mem.read(x.region.v, x.n);
  const out = new Float64Array(x.n);
  const bc1 = 1 - cfg.beta1 ** step;
  const bc2 = 1 - cfg.beta2 ** step;
  for (let i = 0; i < x.n; i++) {
    let delta: number;
    switch (cfg.kind) {
      case "sgd":
        delta = g[i]!;
        break;
      case "momentum":
        delta = m[i]!;
        break;
      case "nesterov":
        delta = g[i]! + cfg.momentum * m[i]!;
        break;
      case "adam":
      case "adamw":
        delta = m[i]! / bc1 / (Math.sqrt(v[i]! / bc2) + cfg.eps);
        break;
      case "rmsprop":
        delta = g[i]! / (Math.sqrt(m[i]!) + cfg.eps); // RMSprop's square average is slot 0 (m)
        break;
    }
    out[i] = w[i]! - cfg.lr * s * delta;
  }
  return out;
}

const relClose = (got: Float32Array, want: ArrayLike<number>, tol: number) => {
  let worst = 0;
  for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / Math.max(1, Math.abs(want[i]!)));
  return worst <= tol ? true : worst;
};

describe("the prediction kernels", () => {
  test("compute Ŵ = W − lr·s·Δ for every optimizer, any size (tails too)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 67 }), fc.constantFrom<OptimizerKind>(...OPTIMIZERS), fc.integer({ min: 1, max: 7 }), fc.integer({ min: 1, max: 500 }), fc.nat(), (n, kind, s, step, seed) => {
        const cfg = defaultOptimizer(kind);
        const x = vectors(n, seed);
        if (kind === "rmsprop") mem.write(x.region.m, mem.read(x.region.v, n)); // slot 0 holds the square average, ≥ 0
        expect(predictWeights(k, cfg, x.out, x.region, s, step)).toBe(true);
        expect(relClose(mem.read(x.out, n), formula(cfg, x, s, step), 2e-5)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  test("write nothing at s = 0 or before the first update", () => {
    const x = vectors(13, 5);
    mem.write(x.out, new Float32Array(13).fill(7));
    for (const kind of OPTIMIZERS) {
      expect(predictWeights(k, defaultOptimizer(kind), x.out, x.region, 0, 10)).toBe(false);
      expect(predictWeights(k, defaultOptimizer(kind), x.out, x.region, 3, 0)).toBe(false);
    }
    expect(mem.read(x.out, 13).every((v) => v === 7)).toBe(true);
  });
});

/** A fresh parameter vector with its optimizer state and a gradient buffer, driven by the update kernels. */
function optimizerRun(kind: OptimizerKind, n: number, seed: number) {
  const cfg = { ...defaultOptimizer(kind), weightDecay: 0 };
  const w = mem.put(randomFloats(n, seed));
  const g = mem.floats(n);
  const m = mem.put(new Float32Array(n));
  const v = mem.put(new Float32Array(n));
  // RMSprop keeps its square average in slot 0, as applyUpdate passes it.
  const region: UpdateRegion = { w, g, m, v: kind === "adam" || kind === "adamw" ? v : 0, n };
  let step = 0;
  return {
    cfg,
    region,
    step: (grad: Float32Array) => {
      mem.write(g, grad);
      applyUpdate(k, cfg, region, ++step);
    },
    get t() {
      return step;
    },
  };
}

describe("Δ is the direction of the optimizer's last update", () => {
  test("predicting one step from W_{t−1} with the state after update t gives W_t (kernels, weight decay 0)", () => {
    fc.assert(
      fc.property(fc.constantFrom<OptimizerKind>(...OPTIMIZERS), fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 6 }), fc.nat(), (kind, n, updates, seed) => {
        const r = optimizerRun(kind, n, seed);
        for (let t = 1; t < updates; t++) r.step(randomFloats(n, seed + 10 * t));
        const before = mem.put(mem.read(r.region.w, n));
        r.step(randomFloats(n, seed + 999));
        const out = mem.floats(n);
        expect(predictWeights(k, r.cfg, out, { ...r.region, w: before }, 1, r.t)).toBe(true);
        expect(relClose(mem.read(out, n), mem.read(r.region.w, n), 1e-5)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  const converge: Record<OptimizerKind, number> = { sgd: 1, adam: 1, adamw: 1, momentum: 400, nesterov: 400, rmsprop: 3000 };
  test.each([...OPTIMIZERS])("constant gradient: predicting s ahead = running s more updates (%s, at its fixed point)", (kind) => {
    const n = 19;
    const grad = randomFloats(n, 3, 0.5);
    for (const s of [1, 2, 5]) {
      const r = optimizerRun(kind, n, 11);
      for (let t = 0; t < converge[kind]; t++) r.step(grad);
      const out = mem.floats(n);
      expect(predictWeights(k, r.cfg, out, r.region, s, r.t)).toBe(true);
      const predicted = mem.read(out, n);
      for (let i = 0; i < s; i++) r.step(grad);
      expect({ kind, s, close: relClose(predicted, mem.read(r.region.w, n), 2e-4) }).toEqual({ kind, s, close: true });
    }
  });

  test("momentum before its fixed point: the prediction undershoots (the documented miss)", () => {
    const n = 7;
    const grad = randomFloats(n, 4, 0.5);
    const r = optimizerRun("momentum", n, 12);
    r.step(grad);
    const out = mem.floats(n);
    predictWeights(k, r.cfg, out, r.region, 3, r.t);
    const predicted = mem.read(out, n);
    for (let i = 0; i < 3; i++) r.step(grad);
    expect(relClose(predicted, mem.read(r.region.w, n), 2e-4)).not.toBe(true);
  });
});

describe("how far ahead each stage predicts", () => {
  test("SpecTrain v1 by hand for D = 4: forward ⌊k/2⌋ + D − k − 1, backward ⌊k/2⌋", () => {
    expect([0, 1, 2, 3].map((s) => spectrainSteps(s, 4, "forward"))).toEqual([3, 2, 2, 1]);
    expect([0, 1, 2, 3].map((s) => spectrainSteps(s, 4, "backward"))).toEqual([0, 0, 1, 1]);
  });

  test("PipeOptim on asynchronous 1F1B: F(k,m) predicts min(m, D − k − 1) updates ahead — exactly the updates before its B", () => {
    for (let D = 1; D <= 6; D++) {
      for (const M of [1, 3, 6, 12]) {
        const raw = asyncOneFOneB(D, M);
        const annotated = annotate("pipeoptim", raw, 1);
        annotated.actions.forEach((list, stage) => {
          const between = updatesBetweenForwardAndBackward(raw, stage);
          for (const a of list) {
            if (a.kind === "F") {
              expect({ D, M, stage, m: a.microbatch, s: a.predictSteps }).toEqual({ D, M, stage, m: a.microbatch, s: Math.min(a.microbatch, D - stage - 1) });
              expect(a.predictSteps).toBe(between.get(a.microbatch)!);
            } else expect(a.weights).toBe("live"); // B and the update use the live weights
          }
        });
      }
    }
  });

  test("without prediction (the ablation), every step is 0", () => {
    const annotated = annotate("pipeoptim", asyncOneFOneB(4, 8), 1, false);
    expect(annotated.actions.flat().every((a) => a.kind !== "F" || a.predictSteps === 0)).toBe(true);
  });
});
