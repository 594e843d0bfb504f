/**
 * Weight prediction (engine/algorithms/pipeline/prediction.ts) against a plain-TypeScript reference
 * of the optimizers with the kernels' semantics (engine/kernels/abi.ts):
 *  - Δ_t is the direction update t took: W_{t−1} − lr·Δ_t = W_t for every optimizer (weight decay 0),
 *    after any gradients;
 *  - with a constant gradient, predicting s steps ahead equals running s more updates: SGD and Adam /
 *    AdamW (wd 0) from step 1 on, momentum / Nesterov once m = g/(1−μ), RMSprop once v = g²;
 *  - the documented misses: AdamW with weight decay (off by ≈ lr·wd·s·W), momentum before its fixed point;
 *  - nothing is predicted at step 0;
 *  - SpecTrain's and PipeOptim's s by hand, and PipeOptim's s = D−k−1 against the async 1F1B schedule:
 *    the B's stage k runs between F(k,m) and B(k,m) (list order, version annotations, simulator
 *    timeline), and a replay of each stage where the forward's Ŵ equals the weights its backward sees.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { pipeoptimSteps, predictionDirection, predictWeights, spectrainSteps } from "../engine/algorithms/pipeline/prediction.ts";
import { asyncOneFOneB } from "../engine/algorithms/pipeline/schedule.ts";
import { simulate } from "../engine/algorithms/pipeline/simulate.ts";
import { defaultOptimizer, OPTIMIZERS, type OptimizerConfig, type OptimizerKind } from "../engine/optim/optimizer.ts";

// ---- reference optimizer: one update, the semantics of the kernels (abi.ts), dampening 0 ----------

interface RefState {
  m: Float32Array;
  v: Float32Array;
  lastGrad: Float32Array;
  step: number;
}

const newState = (n: number): RefState => ({ m: new Float32Array(n), v: new Float32Array(n), lastGrad: new Float32Array(n), step: 0 });

function refUpdate(cfg: OptimizerConfig, w: Float32Array, g: Float32Array, st: RefState): void {
  const t = ++st.step;
  const { lr, weightDecay: wd, momentum: mu } = cfg;
  const bc1 = 1 - Math.pow(cfg.beta1, t);
  const bc2 = 1 - Math.pow(cfg.beta2, t);
  for (let i = 0; i < w.length; i++) {
    const wi = w[i]!;
    const gi = g[i]!;
    st.lastGrad[i] = gi;
    switch (cfg.kind) {
      case "sgd":
        w[i] = wi - lr * (gi + wd * wi);
        break;
      case "momentum":
      case "nesterov": {
        const g2 = gi + wd * wi;
        st.m[i] = mu * st.m[i]! + g2;
        w[i] = wi - lr * (cfg.kind === "nesterov" ? g2 + mu * st.m[i]! : st.m[i]!);
        break;
      }
      case "adam":
      case "adamw": {
        const w0 = cfg.kind === "adamw" ? wi * (1 - lr * wd) : wi;
        const g2 = cfg.kind === "adamw" ? gi : gi + wd * wi;
        st.m[i] = cfg.beta1 * st.m[i]! + (1 - cfg.beta1) * g2;
        st.v[i] = cfg.beta2 * st.v[i]! + (1 - cfg.beta2) * g2 * g2;
        w[i] = w0 - (lr / bc1) * (st.m[i]! / (Math.sqrt(st.v[i]!) / Math.sqrt(bc2) + cfg.eps));
        break;
      }
      case "rmsprop": {
        const g2 = gi + wd * wi;
        st.v[i] = cfg.alpha * st.v[i]! + (1 - cfg.alpha) * g2 * g2;
        w[i] = wi - (lr * g2) / (Math.sqrt(st.v[i]!) + cfg.eps);
        break;
      }
    }
  }
}

/** The state as the executor hands it over: each optimizer's own slots. */
function stateFor(kind: OptimizerKind, st: RefState) {
  switch (kind) {
    case "sgd":
      return { lastGrad: st.lastGrad, step: st.step };
    case "momentum":
      return { m: st.m, step: st.step };
    case "nesterov":
      return { m: st.m, lastGrad: st.lastGrad, step: st.step };
    case "adam":
    case "adamw":
      return { m: st.m, v: st.v, step: st.step };
    case "rmsprop":
      return { v: st.v, lastGrad: st.lastGrad, step: st.step };
  }
}

function config(kind: OptimizerKind, over: Partial<OptimizerConfig> = {}): OptimizerConfig {
  return { ...defaultOptimizer(kind), weightDecay: 0, ...over };
}

/** max |a − b| / (1 + |b|) ≤ tol, with the index of the worst element in the message. */
function expectClose(a: Float32Array, b: Float32Array, tol: number): void {
  expect(a.length).toBe(b.length);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < a.length; i++) {
    const e = Math.abs(a[i]! - b[i]!) / (1 + Math.abs(b[i]!));
    if (!(e <= worst)) [worst, at] = [e, i];
  }
  expect({ worst: worst <= tol ? 0 : worst, at: worst <= tol ? -1 : at }).toEqual({ worst: 0, at: -1 });
}

const TOL = 2e-5;
const vecArb = (min: number, max: number) => fc.array(fc.double({ min, max, noNaN: true }), { minLength: 1, maxLength: 33 });
const f32 = (xs: number[]) => Float32Array.from(xs);

/**
 * Warm up `t` updates with the constant gradient g, predict s ahead, then run s more updates.
 * `prepare` may put the optimizer state at its fixed point first.
 */
function predictVsActual(cfg: OptimizerConfig, w0: Float32Array, g: Float32Array, t: number, s: number, prepare?: (st: RefState) => void) {
  const w = w0.slice();
  const st = newState(w.length);
  prepare?.(st);
  for (let i = 0; i < t; i++) refUpdate(cfg, w, g, st);
  const delta = new Float32Array(w.length);
  expect(predictionDirection(cfg, stateFor(cfg.kind, st), delta)).toBe(true);
  const predicted = new Float32Array(w.length);
  predictWeights(w, delta, cfg.lr, s, predicted);
  const start = w.slice();
  for (let i = 0; i < s; i++) refUpdate(cfg, w, g, st);
  return { predicted, actual: w, start, delta };
}

describe("predictionDirection", () => {
  test.each([...OPTIMIZERS])("%s: nothing is predicted at step 0, out untouched", (kind) => {
    const st = newState(5);
    const out = new Float32Array(5).fill(7);
    expect(predictionDirection(config(kind), stateFor(kind, st), out)).toBe(false);
    expect([...out]).toEqual([7, 7, 7, 7, 7]);
  });

  test.each([...OPTIMIZERS])("%s: Δ_t is the direction update t took: W_{t−1} − lr·Δ_t = W_t (any gradients)", (kind) => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 33 }),
        fc.integer({ min: 1, max: 12 }),
        fc.double({ min: 1e-4, max: 0.1, noNaN: true }),
        fc.double({ min: 0, max: 0.95, noNaN: true }),
        fc.integer(),
        (n, t, lr, mu, seed) => {
          const cfg = config(kind, { lr, momentum: mu });
          let x = seed >>> 0;
          const rand = () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
          const w = Float32Array.from({ length: n }, rand);
          const st = newState(n);
          let before = w.slice();
          for (let i = 0; i < t; i++) {
            before = w.slice();
            refUpdate(cfg, w, Float32Array.from({ length: n }, rand), st);
          }
          const delta = new Float32Array(n);
          expect(predictionDirection(cfg, stateFor(kind, st), delta)).toBe(true);
          const redo = new Float32Array(n);
          predictWeights(before, delta, lr, 1, redo);
          expectClose(redo, w, TOL);
        },
      ),
      { numRuns: 60 },
    );
  });

  test("adam: Δ = m̂/(√v̂ + ε) by hand", () => {
    const cfg = config("adam", { beta1: 0.5, beta2: 0.75, eps: 0.25 });
    const out = new Float32Array(1);
    // t = 2: bc1 = 0.75, bc2 = 1 − 0.5625 = 0.4375; m̂ = 0.3/0.75 = 0.4, v̂ = 0.07/0.4375 = 0.16, Δ = 0.4/(0.4 + 0.25).
    expect(predictionDirection(cfg, { m: f32([0.3]), v: f32([0.07]), step: 2 }, out)).toBe(true);
    expect(out[0]!).toBeCloseTo(0.4 / 0.65, 6);
  });

  test("rmsprop's square average may come as state.m (the optimizer's slot 0)", () => {
    const out = new Float32Array(2);
    expect(predictionDirection(config("rmsprop", { eps: 0 }), { m: f32([4, 0.25]), lastGrad: f32([1, -1]), step: 3 }, out)).toBe(true);
    expect([...out]).toEqual([0.5, -2]);
  });

  test("missing or short state is a programming error", () => {
    const out = new Float32Array(3);
    expect(() => predictionDirection(config("momentum"), { step: 1 }, out)).toThrow(/state\.m is required/);
    expect(() => predictionDirection(config("adam"), { m: new Float32Array(3), v: new Float32Array(2), step: 1 }, out)).toThrow(RangeError);
  });
});

describe("predictWeights", () => {
  test("Ŵ = W − lr·s·Δ; s = 0 copies W; out may alias W", () => {
    const out = new Float32Array(3);
    predictWeights(f32([1, 2, 3]), f32([1, -1, 0.5]), 0.5, 2, out);
    expect([...out]).toEqual([0, 3, 2.5]);
    predictWeights(f32([1, 2, 3]), f32([1, -1, 0.5]), 0.5, 0, out);
    expect([...out]).toEqual([1, 2, 3]);
    const w = f32([1, 2]);
    predictWeights(w, f32([2, 2]), 0.25, 1, w);
    expect([...w]).toEqual([0.5, 1.5]);
  });
});

describe("constant gradient: predicting s ahead = running s more updates", () => {
  const base = {
    w: vecArb(-2, 2),
    gScale: fc.double({ min: -1, max: 1, noNaN: true }),
    s: fc.integer({ min: 0, max: 16 }),
    t: fc.integer({ min: 1, max: 30 }),
  };
  const gradOf = (w: number[], scale: number) => Float32Array.from(w, (x, i) => (i % 3 === 2 ? -1 : 1) * scale * (0.25 + Math.abs(x)));

  test("sgd, from the first update on", () => {
    fc.assert(
      fc.property(base.w, base.gScale, base.s, base.t, fc.double({ min: 1e-4, max: 0.1, noNaN: true }), (w, gs, s, t, lr) => {
        const r = predictVsActual(config("sgd", { lr }), f32(w), gradOf(w, gs), t, s);
        expectClose(r.predicted, r.actual, TOL);
      }),
    );
  });

  test.each(["adam", "adamw"] as const)("%s without weight decay, from the first update on (m̂ = g, v̂ = g²)", (kind) => {
    fc.assert(
      fc.property(
        base.w,
        base.gScale,
        base.s,
        base.t,
        fc.double({ min: 1e-4, max: 0.05, noNaN: true }),
        fc.double({ min: 0, max: 0.99, noNaN: true }),
        fc.double({ min: 0.9, max: 0.9999, noNaN: true }),
        (w, gs, s, t, lr, beta1, beta2) => {
          const r = predictVsActual(config(kind, { lr, beta1, beta2 }), f32(w), gradOf(w, gs), t, s);
          expectClose(r.predicted, r.actual, TOL);
        },
      ),
    );
  });

  test.each(["momentum", "nesterov"] as const)("%s once the buffer is at its fixed point g/(1−μ)", (kind) => {
    fc.assert(
      fc.property(
        base.w,
        base.gScale,
        base.s,
        fc.double({ min: 1e-4, max: 0.05, noNaN: true }),
        fc.double({ min: 0, max: 0.9, noNaN: true }),
        fc.boolean(),
        (w, gs, s, lr, mu, startAtFixedPoint) => {
          const g = gradOf(w, gs);
          const cfg = config(kind, { lr, momentum: mu });
          // Either start m at g/(1−μ) (then any t ≥ 1 will do), or warm up from 0 until μᵗ < 1e-18.
          const t = startAtFixedPoint ? 1 : 400;
          const r = predictVsActual(cfg, f32(w), g, t, s, startAtFixedPoint ? (st) => st.m.set(g.map((x) => x / (1 - mu))) : undefined);
          expectClose(r.predicted, r.actual, TOL);
        },
      ),
    );
  });

  test("rmsprop once v = g²", () => {
    fc.assert(
      fc.property(base.w, base.gScale, base.s, base.t, fc.double({ min: 1e-4, max: 0.05, noNaN: true }), fc.double({ min: 0.5, max: 0.999, noNaN: true }), (w, gs, s, t, lr, alpha) => {
        const g = gradOf(w, gs);
        const r = predictVsActual(config("rmsprop", { lr, alpha }), f32(w), g, t, s, (st) => st.v.set(g.map((x) => x * x)));
        expectClose(r.predicted, r.actual, TOL);
      }),
    );
  });

  test("not exact, as documented: AdamW with weight decay misses by ≈ lr·wd·s·W", () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0.5, max: 2, noNaN: true }), { minLength: 1, maxLength: 17 }),
        fc.integer({ min: 4, max: 16 }),
        fc.double({ min: 1e-3, max: 2e-3, noNaN: true }),
        fc.double({ min: 0.05, max: 0.1, noNaN: true }),
        (w, s, lr, wd) => {
          const r = predictVsActual(config("adamw", { lr, weightDecay: wd }), f32(w), gradOf(w, 0.5), 3, s);
          for (let i = 0; i < w.length; i++) {
            const expected = lr * wd * s * r.start[i]!; // first order; the rest is O(s·lr·|Δ|/W) ≈ 2% here
            const miss = r.predicted[i]! - r.actual[i]!;
            expect(Math.abs(miss - expected)).toBeLessThan(0.1 * expected);
          }
        },
      ),
      { numRuns: 50 },
    );
  });

  test("not exact, as documented: momentum before its fixed point undershoots", () => {
    const cfg = config("momentum", { lr: 0.1, momentum: 0.9 });
    const r = predictVsActual(cfg, f32([0]), f32([1]), 1, 5);
    // After one update W = −0.1 and Δ = m_1 = 1, so Ŵ = −0.1 − 0.5; the real buffer grows 1.9, 2.71, 3.439, 4.0951, 4.68559.
    expect(r.predicted[0]!).toBeCloseTo(-0.6, 6);
    expect(r.actual[0]!).toBeCloseTo(-0.1 - 0.1 * (1.9 + 2.71 + 3.439 + 4.0951 + 4.68559), 5);
  });
});

describe("SpecTrain's s", () => {
  test("by hand for D = 4", () => {
    const v1f = [0, 1, 2, 3].map((k) => spectrainSteps(k, 4, "v1", "forward"));
    const v1b = [0, 1, 2, 3].map((k) => spectrainSteps(k, 4, "v1", "backward"));
    const v2f = [0, 1, 2, 3].map((k) => spectrainSteps(k, 4, "v2", "forward"));
    const v2b = [0, 1, 2, 3].map((k) => spectrainSteps(k, 4, "v2", "backward"));
    expect(v1f).toEqual([3, 2, 2, 1]); // ⌊k/2⌋ + D − k − 1
    expect(v1b).toEqual([0, 0, 1, 1]); // ⌊k/2⌋
    expect(v2f).toEqual([3, 2, 1, 0]); // D − k − 1
    expect(v2b).toEqual(v2f); // the backward reuses the forward's prediction
  });

  test("by hand for D = 1, 2, 5", () => {
    expect(spectrainSteps(0, 1, "v1", "forward")).toBe(0);
    expect(spectrainSteps(0, 1, "v1", "backward")).toBe(0);
    expect([0, 1].map((k) => spectrainSteps(k, 2, "v1", "forward"))).toEqual([1, 0]);
    expect([0, 1, 2, 3, 4].map((k) => spectrainSteps(k, 5, "v1", "forward"))).toEqual([4, 3, 3, 2, 2]);
    expect([0, 1, 2, 3, 4].map((k) => spectrainSteps(k, 5, "v1", "backward"))).toEqual([0, 0, 1, 1, 2]);
  });

  test("bad stage numbers are RangeErrors", () => {
    expect(() => spectrainSteps(4, 4, "v1", "forward")).toThrow(RangeError);
    expect(() => spectrainSteps(-1, 4, "v2", "forward")).toThrow(RangeError);
    expect(() => pipeoptimSteps(0, 0)).toThrow(RangeError);
    expect(() => pipeoptimSteps(1.5, 4)).toThrow(RangeError);
  });
});

describe("PipeOptim's s = D − k − 1 against asynchronous 1F1B", () => {
  test("by hand", () => {
    expect(pipeoptimSteps(0, 1)).toBe(0);
    expect([0, 1].map((k) => pipeoptimSteps(k, 2))).toEqual([1, 0]);
    expect([0, 1, 2, 3].map((k) => pipeoptimSteps(k, 4))).toEqual([3, 2, 1, 0]);
  });

  test("stage k runs exactly s backwards (= updates) between F(k,m) and B(k,m) in steady state", () => {
    const costs = fc.record({ f: fc.double({ min: 0.1, max: 5, noNaN: true }), b: fc.double({ min: 0.1, max: 5, noNaN: true }), comm: fc.double({ min: 0, max: 2, noNaN: true }) });
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 40 }), costs, (D, M, c) => {
        const sched = asyncOneFOneB(D, M);
        const sim = simulate(sched, c);
        for (let k = 0; k < D; k++) {
          const list = sched.actions[k]!;
          const s = pipeoptimSteps(k, D);
          // The executed order on stage k from the simulator's clock (ties broken by list position).
          const times = sim.perStage[k]!.startTimes;
          const executed = list.map((a, p) => ({ a, p, start: times[p]! })).sort((x, y) => x.start - y.start || x.p - y.p).map((e) => e.a);
          for (let m = 0; m < M; m++) {
            for (const order of [list, executed]) {
              const f = order.findIndex((a) => a.kind === "F" && a.microbatch === m);
              const b = order.findIndex((a) => a.kind === "B" && a.microbatch === m);
              const between = order.slice(f + 1, b).filter((a) => a.kind === "B").length;
              // Steady state from m = D−k−1 on; before it only the m earlier backwards intervene.
              expect({ k, m, between }).toEqual({ k, m, between: m >= s ? s : m });
            }
            // Version annotations: B(k,m) runs after the m updates B(0…m−1); its F saw version max(0, m−s).
            const fv = list.find((a) => a.kind === "F" && a.microbatch === m)!.version!;
            const updatesBeforeB = list.slice(0, list.findIndex((a) => a.kind === "B" && a.microbatch === m)).filter((a) => a.kind === "B").length;
            if (m >= s) expect(updatesBeforeB - fv).toBe(s);
          }
        }
      }),
      { numRuns: 200 },
    );
  });

  test("replaying each stage: the forward's Ŵ equals the weights its backward sees (and D − k would overshoot)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 24 }),
        fc.constantFrom("sgd", "adam") as fc.Arbitrary<OptimizerKind>,
        vecArb(-1, 1),
        (D, M, kind, w0) => {
          const cfg = config(kind, { lr: 0.01 });
          const g = Float32Array.from(w0, (x) => 0.5 + x); // nonzero, so Δ ≠ 0
          const sched = asyncOneFOneB(D, M);
          for (let k = 0; k < D; k++) {
            const w = f32(w0);
            const st = newState(w.length);
            const delta = new Float32Array(w.length);
            const predicted = new Map<number, { s: Float32Array; plusOne: Float32Array }>();
            for (const a of sched.actions[k]!) {
              if (a.kind === "F") {
                if (!predictionDirection(cfg, stateFor(kind, st), delta)) continue;
                const s = new Float32Array(w.length);
                const plusOne = new Float32Array(w.length);
                predictWeights(w, delta, cfg.lr, pipeoptimSteps(k, D), s);
                predictWeights(w, delta, cfg.lr, D - k, plusOne);
                predicted.set(a.microbatch, { s, plusOne });
              } else if (a.kind === "B") {
                const p = predicted.get(a.microbatch);
                if (p) {
                  expectClose(p.s, w, TOL);
                  let gap = 0;
                  for (let i = 0; i < w.length; i++) gap = Math.max(gap, Math.abs(p.plusOne[i]! - w[i]!));
                  expect(gap).toBeGreaterThan(1e-4); // one update of lr·|Δ| ≥ 0.01·(0.5/1.5) away
                }
                refUpdate(cfg, w, g, st);
              }
            }
            // F(0) … F(D−k−1) run before the stage's first backward: only the later ones are predicted.
            expect(predicted.size).toBe(Math.max(0, M - (D - k)));
          }
        },
      ),
      { numRuns: 100 },
    );
  });
});
