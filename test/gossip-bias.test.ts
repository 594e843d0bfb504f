/**
 * What bias correction is for, shown on fixed points. Node i minimises f_i(x) = ½‖x − b_i‖² with its
 * own b_i (deterministic, heterogeneous gradients g_i = x_i − b_i); the network's minimiser is
 * x* = mean(b), which exact-average gradient descent (PmSGD) reaches. The DecentLaM paper derives:
 * D-SGD stops at a biased point whose distance to x* grows with γ; DmSGD(γ, β) stops exactly where
 * D-SGD with step γ/(1 − β) stops; DecentLaM(γ, β) where D-SGD with step γ stops. Gradient tracking
 * and exact diffusion remove the bias. Push-sum (SGP) with a constant step does not: on a doubly
 * stochastic graph it is D-SGD, and it stops where D-SGD stops. Then the invariants of push-sum on a
 * graph that is only column stochastic, of gradient tracking, and the reductions of local SGD,
 * SlowMo and QG-DSGDm.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { mixingSchedule } from "../engine/algorithms/gossip/setup.ts";
import { buildTopology } from "../engine/algorithms/gossip/topology.ts";
import type { Edges } from "../engine/algorithms/gossip/round.ts";
import { nodes, type Rows } from "./gossip-harness.ts";

const N = 6;
const D = 4;
const ring = mixingSchedule(buildTopology("ring", N)).rounds[0]!;
const full = (n: number) => mixingSchedule(buildTopology("full", n)).rounds[0]!;
const B: Rows = Array.from({ length: N }, (_, i) => Float64Array.from({ length: D }, (_, e) => Math.sin(3 * i + 7 * e) * (1 + i)));
const xStar = Float64Array.from({ length: D }, (_, e) => B.reduce((a, b) => a + b[e]!, 0) / N);

/** Run `rounds` rounds of full-batch gradients at each node's own model; the nodes' final models. */
function fixedPoint(algorithm: string, gamma: number, beta: number, rounds = 1500, edges: Edges[] = ring): Rows {
  const sim = nodes(algorithm, N, D);
  sim.setState(Array.from({ length: N }, () => new Float64Array(D)), Array.from({ length: N }, () => new Float64Array(D)));
  for (let r = 0; r < rounds; r++) sim.round(sim.models().map((z, i) => z.map((v, e) => v - B[i]![e]!)), edges, gamma, beta);
  return sim.models();
}

/** Largest distance of any node's model from `target`. */
const distance = (models: Rows, target: ArrayLike<number>) => Math.max(...models.map((m) => Math.hypot(...m.map((v, e) => v - target[e]!))));
const farthest = (a: Rows, b: Rows) => Math.max(...a.map((m, i) => distance([m], b[i]!)));

describe("fixed points with heterogeneous deterministic gradients", () => {
  test("exact-average descent, gradient tracking and exact diffusion reach x*; D-SGD does not", () => {
    expect(distance(fixedPoint("pmsgd", 0.1, 0), xStar)).toBeLessThan(1e-5);
    expect(distance(fixedPoint("gt", 0.1, 0), xStar)).toBeLessThan(1e-5);
    // Exact diffusion's network mean is only marginally stable: f32 rounding moves it by about
    // 1.5e-7 per round (8e-5 after 500 rounds, 4.6e-4 after 3000, measured), a random walk that
    // exact arithmetic would not have. Its distance from x* is still 1000× below D-SGD's bias.
    expect(distance(fixedPoint("ed", 0.1, 0, 500), xStar)).toBeLessThan(2e-4);
    expect(distance(fixedPoint("dsgd", 0.1, 0), xStar)).toBeGreaterThan(0.05);
  });

  test("D-SGD's bias grows with γ", () => {
    const biases = [0.02, 0.05, 0.1, 0.2].map((gamma) => distance(fixedPoint("dsgd", gamma, 0), xStar));
    for (let k = 1; k < biases.length; k++) expect(biases[k]!).toBeGreaterThan(biases[k - 1]! * 1.5);
  });

  test("DmSGD(γ, β) stops where D-SGD(γ/(1 − β)) stops; DecentLaM(γ, β) where D-SGD(γ) stops", () => {
    for (const [gamma, beta] of [[0.05, 0.5], [0.02, 0.8]] as const) {
      const dmsgd = fixedPoint("dmsgd", gamma, beta);
      expect(farthest(dmsgd, fixedPoint("dsgd", gamma / (1 - beta), 0))).toBeLessThan(1e-4);
      const decentlam = fixedPoint("decentlam", gamma, beta);
      expect(farthest(decentlam, fixedPoint("dsgd", gamma, 0))).toBeLessThan(1e-4);
      // So DmSGD's bias is the larger one, by about 1/(1 − β).
      expect(distance(dmsgd, xStar)).toBeGreaterThan(distance(decentlam, xStar) * 1.5);
    }
  });

  test("push-sum with a constant step stops where D-SGD stops (it is not bias-corrected)", () => {
    expect(farthest(fixedPoint("sgp", 0.1, 0), fixedPoint("dsgd", 0.1, 0))).toBeLessThan(1e-4);
  });
});

/** A directed graph given as out-neighbour lists: node j sends 1/|out(j)| to each (itself included). */
function pushWeights(out: number[][]): Edges[] {
  const n = out.length;
  const incoming: Edges[] = Array.from({ length: n }, () => ({ from: [], weights: [] }));
  out.forEach((targets, j) => targets.forEach((i) => (incoming[i]!.from.push(j), incoming[i]!.weights.push(1 / targets.length))));
  for (const e of incoming) {
    const order = e.from.map((_, k) => k).sort((a, b) => e.from[a]! - e.from[b]!);
    e.from = order.map((k) => e.from[k]!);
    e.weights = order.map((k) => e.weights[k]!);
  }
  return incoming;
}

/** Directed graphs on a ring (strongly connected) plus random extra out-edges: column, not row, stochastic. */
const directedGraph = fc.integer({ min: 3, max: 8 }).chain((n) =>
  fc.array(fc.uniqueArray(fc.integer({ min: 0, max: n - 1 }), { maxLength: n - 1 }), { minLength: n, maxLength: n }).map((extra) =>
    extra.map((targets, j) => [...new Set([j, (j + 1) % n, ...targets])]),
  ),
);

describe("push-sum on graphs that are only column stochastic", () => {
  test("mixing preserves Σx and Σw, and every node's x/w converges to the true average", () => {
    fc.assert(
      fc.property(directedGraph, fc.array(fc.double({ min: -10, max: 10, noNaN: true }), { minLength: 8, maxLength: 8 }), (out, values) => {
        const n = out.length;
        const edges = pushWeights(out);
        const sim = nodes("sgp", n, 1);
        const x0: Rows = Array.from({ length: n }, (_, i) => Float64Array.of(values[i]!));
        sim.setState(x0, Array.from({ length: n }, () => new Float64Array(1)));
        const average = values.slice(0, n).reduce((a, b) => a + Math.fround(b), 0) / n;
        const zero = Array.from({ length: n }, () => new Float64Array(1));
        for (let r = 0; r < 200; r++) {
          sim.round(zero, edges, 0.1, 0);
          const sumX = sim.x().reduce((a, x) => a + x[0]!, 0);
          const sumW = sim.weights().reduce((a, w) => a + w, 0);
          expect(Math.abs(sumX - average * n)).toBeLessThan(1e-3 * (1 + Math.abs(average * n)));
          expect(Math.abs(sumW - n)).toBeLessThan(1e-4 * n);
        }
        for (const z of sim.models()) expect(Math.abs(z[0]! - average)).toBeLessThan(1e-3 * (1 + Math.abs(average)));
      }),
      { numRuns: 60 },
    );
  });
});

describe("gradient tracking", () => {
  test("the mean of y equals the mean of the latest local gradients, every round, for any doubly stochastic W", () => {
    const topologies = ["ring", "exponential", "one-peer-exponential", "star", "full"];
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 8 }),
        fc.constantFrom(...topologies),
        fc.array(fc.array(fc.double({ min: -5, max: 5, noNaN: true }), { minLength: 8 * 3, maxLength: 8 * 3 }), { minLength: 1, maxLength: 5 }),
        (n, topology, gradients) => {
          const rounds = mixingSchedule(buildTopology(topology, n, { seed: 1 })).rounds;
          const sim = nodes("gt", n, 3);
          sim.setState(Array.from({ length: n }, () => new Float64Array(3)), Array.from({ length: n }, () => new Float64Array(3)));
          gradients.forEach((flat, r) => {
            const g: Rows = Array.from({ length: n }, (_, i) => Float64Array.from(flat.slice(i * 3, i * 3 + 3), Math.fround));
            sim.round(g, rounds[r % rounds.length]!, 0.1, 0);
            // After the round, ŷ = W y holds the tracked mean (W preserves the mean).
            const mixedY = sim.state("mixedY");
            for (let e = 0; e < 3; e++) {
              const meanY = mixedY.reduce((a, y) => a + y[e]!, 0) / n;
              const meanG = g.reduce((a, gi) => a + gi[e]!, 0) / n;
              expect(Math.abs(meanY - meanG)).toBeLessThan(1e-4 * (1 + Math.abs(meanG)));
            }
          });
        },
      ),
      { numRuns: 80 },
    );
  });
});

describe("reductions", () => {
  const start = (n: number, d: number): Rows => Array.from({ length: n }, (_, i) => Float64Array.from({ length: d }, (_, e) => Math.cos(i + 2 * e)));
  const zeros = (n: number, d: number): Rows => Array.from({ length: n }, () => new Float64Array(d));
  const gradients = (n: number, d: number, r: number): Rows => Array.from({ length: n }, (_, i) => Float64Array.from({ length: d }, (_, e) => Math.sin(r + 3 * i + e)));

  test("local SGD with τ = 1 is PmSGD (identical starts), with or without momentum", () => {
    for (const beta of [0, 0.9]) {
      const [local, pm] = ["localsgd", "pmsgd"].map((a) => nodes(a, 5, 7, { localSteps: 1, slowMomentum: 0, slowLr: 1 }));
      const x0 = Array.from({ length: 5 }, () => start(1, 7)[0]!);
      for (const s of [local!, pm!]) s.setState(x0, zeros(5, 7));
      for (let r = 0; r < 6; r++) for (const s of [local!, pm!]) s.round(gradients(5, 7, r), full(5), 0.05, beta);
      expect(farthest(local!.x(), pm!.x())).toBeLessThan(1e-5);
    }
  });

  test("SlowMo with slow momentum 0 and slow learning rate 1 is local SGD, for τ = 1 … 4", () => {
    for (const localSteps of [1, 2, 3, 4]) {
      const settings = { localSteps, slowMomentum: 0, slowLr: 1 };
      const [slow, local] = ["slowmo", "localsgd"].map((a) => nodes(a, 4, 5, settings));
      for (const s of [slow!, local!]) s.setState(start(4, 5), zeros(4, 5));
      for (let r = 0; r < 9; r++) for (const s of [slow!, local!]) s.round(gradients(4, 5, r), full(4), 0.05, 0.9);
      expect(farthest(slow!.x(), local!.x())).toBeLessThan(1e-5);
    }
  });

  test("SlowMo with slow momentum: after an averaging round every node holds the slow model, moved by the slow momentum", () => {
    const alpha = 0.5;
    const sim = nodes("slowmo", 3, 2, { localSteps: 2, slowMomentum: 0.5, slowLr: alpha });
    const x0 = Array.from({ length: 3 }, () => Float64Array.of(1, -1));
    sim.setState(x0, zeros(3, 2));
    const g: Rows = [Float64Array.of(1, 0), Float64Array.of(0, 1), Float64Array.of(2, 2)];
    const gamma = 0.1;
    // Two plain local steps (β = 0): x̄ = x0 − 2γḡ; u = (x0 − x̄)/γ = 2ḡ; x_prev = x0 − αγ·2ḡ.
    // Two more from x_prev: x̄' = x_prev − 2γḡ; u' = 0.5·u + (x_prev − x̄')/γ = 3ḡ; x_prev' = x_prev − αγ·3ḡ.
    for (let r = 0; r < 4; r++) sim.round(g, full(3), gamma, 0);
    const gBar = [1, 1];
    const expected = Float64Array.from([0, 1], (e) => x0[0]![e]! - alpha * gamma * 5 * gBar[e]!);
    for (const x of sim.x()) expect(Math.hypot(...x.map((v, e) => v - expected[e]!))).toBeLessThan(1e-5);
  });

  test("QG-DSGDm with W = 11ᵀ/n follows the centralised quasi-global momentum recursion", () => {
    const n = 4;
    const d = 3;
    const gamma = 0.1;
    const beta = 0.9;
    const sim = nodes("qgm", n, d);
    const x0 = Array.from({ length: n }, () => start(1, d)[0]!);
    sim.setState(x0, zeros(n, d));
    let x = Float64Array.from(x0[0]!);
    let m = new Float64Array(d);
    for (let r = 0; r < 8; r++) {
      const g = gradients(n, d, r);
      sim.round(g, full(n), gamma, beta);
      const gBar = Float64Array.from({ length: d }, (_, e) => g.reduce((a, gi) => a + gi[e]!, 0) / n);
      // x⁺ = x − γ(ḡ + βm);  d = (x − x⁺)/γ = ḡ + βm;  m ← βm + (1 − β)d.
      const step = gBar.map((ge, e) => ge + beta * m[e]!);
      x = x.map((xe, e) => xe - gamma * step[e]!);
      m = m.map((me, e) => beta * me + (1 - beta) * step[e]!);
    }
    for (const xi of sim.x()) expect(Math.hypot(...xi.map((v, e) => v - x[e]!))).toBeLessThan(1e-4);
  });
});
