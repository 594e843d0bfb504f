/**
 * The gossip algorithms' update rules, run through the engine's own per-node steps (each rule's
 * message and update on the wasm kernels) with arbitrary per-node gradients, against the invariants
 * of docs/ALGORITHMS.md §6.4; then end to end.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { GOSSIP_ALGORITHMS, nodes, type Rows } from "./gossip-harness.ts";
import { mixingSchedule } from "../engine/algorithms/gossip/setup.ts";
import { buildTopology } from "../engine/algorithms/gossip/topology.ts";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import { train, type TrainConfig } from "../engine/train.ts";
import { floats } from "./arbitraries.ts";

const mean = (rows: Rows) => rows[0]!.map((_, e) => rows.reduce((a, r) => a + r[e]!, 0) / rows.length);
/** n rows of d values in [−1, 1] (per-node vectors), generated and shrunk by fast-check. */
const rows = (n: number, d: number): fc.Arbitrary<Rows> => fc.array(floats(d), { minLength: n, maxLength: n }).map((rs) => rs.map((r) => Float64Array.from(r)));
const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 2e-4) => {
  for (let e = 0; e < a.length; e++) if (Math.abs(a[e]! - b[e]!) > tol * (1 + Math.abs(b[e]!))) return false;
  return true;
};

/** Doubly stochastic topologies of n nodes (dynamic ones contribute every round of their period). */
const doublyStochastic = (n: number) =>
  ["ring", "exponential", "symmetric-exponential", "one-peer-exponential", "star", "full", "mesh", "erdos-renyi"].flatMap((name) =>
    mixingSchedule(buildTopology(name, n, { seed: n })).rounds,
  );

const params = fc.record({
  n: fc.integer({ min: 2, max: 9 }),
  d: fc.integer({ min: 1, max: 37 }),
  gamma: fc.double({ min: 0.01, max: 0.5, noNaN: true }),
  beta: fc.double({ min: 0, max: 0.95, noNaN: true }),
  pick: fc.nat(),
});
/** Sizes and step sizes, then data shaped by them. */
const withData = <T,>(data: (n: number, d: number) => fc.Arbitrary<T>) => params.chain((p) => fc.tuple(fc.constant(p), data(p.n, p.d)));

describe("gossip update rules", () => {
  test("dmsgd and decentlam: the node-means of x and m follow PmSGD on the mean gradient, for any doubly stochastic W and gradients", () => {
    fc.assert(
      fc.property(withData((n, d) => fc.tuple(rows(n, d), rows(n, d), rows(n, d))), fc.constantFrom("dmsgd", "decentlam"), ([{ n, d, gamma, beta, pick }, [x, m, g]], algorithm) => {
        const all = doublyStochastic(n);
        const edges = all[pick % all.length]!;
        const sim = nodes(algorithm, n, d);
        sim.setState(x, m);
        sim.round(g, edges, gamma, beta);
        const mNext = mean(m).map((mv, e) => beta * mv + mean(g)[e]!);
        const xNext = mean(x).map((xv, e) => xv - gamma * mNext[e]!);
        expect(close(mean(sim.m()), mNext)).toBe(true);
        expect(close(mean(sim.x()), xNext)).toBe(true);
      }),
      { numRuns: 150 },
    );
  });

  test("with W = 11ᵀ/n, dmsgd and decentlam equal pmsgd round after round", () => {
    const data = withData((n, d) => fc.tuple(floats(d), fc.array(rows(n, d), { minLength: 1, maxLength: 4 })));
    fc.assert(
      fc.property(data, ([{ n, d, gamma, beta }, [start, grads]]) => {
        const J = mixingSchedule(buildTopology("full", n)).rounds[0]!;
        const sims = (["pmsgd", "dmsgd", "decentlam"] as const).map((a) => {
          const s = nodes(a, n, d);
          s.setState(Array.from({ length: n }, () => Float64Array.from(start)), Array.from({ length: n }, () => new Float64Array(d)));
          return s;
        });
        for (const g of grads) for (const s of sims) s.round(g, J, gamma, beta);
        const [pmsgd, dmsgd, decentlam] = sims.map((s) => s.x());
        for (let i = 0; i < n; i++) {
          expect(close(dmsgd![i]!, pmsgd![i]!, 1e-3)).toBe(true);
          expect(close(decentlam![i]!, pmsgd![i]!, 1e-3)).toBe(true);
        }
      }),
      { numRuns: 60 },
    );
  });

  test("decentlam with β = 0 is D-PSGD", () => {
    fc.assert(
      fc.property(withData((n, d) => fc.tuple(rows(n, d), rows(n, d), rows(n, d))), ([{ n, d, gamma, pick }, [x, m, g]]) => {
        const all = doublyStochastic(n);
        const edges = all[pick % all.length]!;
        const results = (["dsgd", "decentlam"] as const).map((a) => {
          const s = nodes(a, n, d);
          s.setState(x, m); // any momentum: β = 0 ignores it
          s.round(g, edges, gamma, 0);
          return s.x();
        });
        for (let i = 0; i < n; i++) expect(close(results[1]![i]!, results[0]![i]!, 1e-3)).toBe(true);
      }),
      { numRuns: 100 },
    );
  });

  test("identical starting points and gradients stay identical for any W with W1 = 1", () => {
    fc.assert(
      fc.property(withData((_, d) => fc.tuple(floats(d), rows(3, d))), fc.constantFrom(...GOSSIP_ALGORITHMS), ([{ n, d, gamma, beta, pick }, [x, grads]], algorithm) => {
        const all = doublyStochastic(n);
        const sim = nodes(algorithm, n, d);
        sim.setState(Array.from({ length: n }, () => Float64Array.from(x)), Array.from({ length: n }, () => new Float64Array(d)));
        grads.forEach((g, r) => sim.round(Array.from({ length: n }, () => g), all[(pick + r) % all.length]!, gamma, beta));
        const xs = sim.x();
        for (let i = 1; i < n; i++) expect(close(xs[i]!, xs[0]!, 1e-5)).toBe(true);
      }),
      { numRuns: 100 },
    );
  });
});

describe("gossip training", () => {
  const base: TrainConfig = {
    algo: "decentlam",
    model: "mlp:784-16-10",
    data: "synthetic:400",
    epochs: 2,
    batch: 16,
    workers: 3,
    executor: "threads",
    seed: 2,
    optimizer: defaultOptimizer("momentum"),
    gossip: { nodes: 7, topology: "ring", partition: "dirichlet:0.5" },
  };

  test("threads and the deterministic executor give bitwise the same weights, for every algorithm", async () => {
    for (const algo of GOSSIP_ALGORITHMS) {
      const params: Float32Array[] = [];
      // Gradient tracking and exact diffusion take plain steps.
      const optimizer = algo === "gt" || algo === "ed" ? defaultOptimizer("sgd") : base.optimizer;
      for (const executor of ["threads", "deterministic"] as const) {
        await train({ ...base, algo, executor, optimizer }, { onFinish: (p) => params.push(p) });
      }
      expect(Buffer.from(params[0]!.buffer).equals(Buffer.from(params[1]!.buffer))).toBe(true);
    }
  });

  test("the summary reports the averaged model, the nodes, consensus and traffic", async () => {
    const s = await train(base);
    expect(s.testAccuracy).toBeGreaterThan(0.3);
    expect(s.nodeTestAccuracy).toBeGreaterThan(0.2);
    expect(s.consensusDistance).toBeGreaterThan(0);
    // A ring node sends its model to its two neighbours each round.
    expect(s.bytesPerNodeStep).toBe(2 * s.parameters * 4);
    const pmsgd = await train({ ...base, algo: "pmsgd" });
    expect(pmsgd.consensusDistance).toBe(0);
  });

  test("decentlam with momentum on a directed graph is refused unless forced; with β = 0 it runs", async () => {
    const directed = { ...base, gossip: { ...base.gossip, nodes: 8, topology: "exponential" } };
    await expect(train(directed)).rejects.toThrow(/unstable on the non-symmetric exponential topology/);
    await train({ ...directed, optimizer: defaultOptimizer("sgd") });
    await train({ ...directed, epochs: 1, gossip: { ...directed.gossip, force: true } });
  });
});
