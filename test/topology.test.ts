// Gossip topologies: every builder gives a doubly stochastic receive matrix (symmetric where it says
// so) on fast-check-generated sizes; ρ = ‖W − J‖₂ matches the closed forms of docs/ALGORITHMS.md §6.3 and an
// independent Jacobi eigen-solver; mixing keeps the mean and contracts by ρ²; the CLI reports it.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { floats } from "./arbitraries.ts";
import { UserError } from "../engine/errors.ts";
import { Rng } from "../engine/rng.ts";
import {
  buildTopology,
  ceilLog2,
  erdosRenyi,
  exponential,
  fullyConnected,
  hypercube,
  mesh2d,
  mixingAt,
  mixingMatrix,
  onePeerExponential,
  ring,
  star,
  symmetricExponential,
  TOPOLOGY_NAMES,
  torus2d,
  type MixingMatrix,
  type Topology,
  type TopologyName,
} from "../engine/algorithms/gossip/topology.ts";
import {
  isCirculant,
  isColumnStochastic,
  isRowStochastic,
  isSymmetric,
  productOfRounds,
  rho,
  rhoOfPeriod,
  summarizeTopology,
} from "../engine/algorithms/gossip/analysis.ts";
import { extremeEigenvalues } from "../engine/algorithms/gossip/eigen.ts";
import { consensusDistance, mean, mix } from "./mixing-reference.ts";
import { topologyCommand } from "../engine/cli/topology-command.ts";

/** Node counts each topology accepts, up to 64. */
const sizeOf: Record<TopologyName, fc.Arbitrary<number>> = {
  ring: fc.integer({ min: 1, max: 64 }),
  torus: fc.integer({ min: 1, max: 8 }).map((side) => side * side),
  mesh: fc.integer({ min: 1, max: 64 }),
  exponential: fc.integer({ min: 1, max: 64 }),
  "symmetric-exponential": fc.integer({ min: 1, max: 64 }),
  "one-peer-exponential": fc.integer({ min: 1, max: 64 }),
  hypercube: fc.integer({ min: 0, max: 6 }).map((m) => 2 ** m),
  star: fc.integer({ min: 1, max: 64 }),
  full: fc.integer({ min: 1, max: 64 }),
  "erdos-renyi": fc.integer({ min: 1, max: 40 }),
};
const anyTopology = fc.constantFrom(...TOPOLOGY_NAMES).chain((name) => fc.tuple(fc.constant(name), sizeOf[name], fc.nat(1000)));
const build = (name: TopologyName, n: number, seed: number) => buildTopology(name, n, { seed });

const close = (actual: number, expected: number, tolerance: number) => expect(Math.abs(actual - expected)).toBeLessThanOrEqual(tolerance);
const powersOfTwo = (maxLog: number) => Array.from({ length: maxLog }, (_, m) => 2 ** (m + 1));

/** Reference: cyclic Jacobi rotations until the off-diagonal vanishes; all eigenvalues, any order. */
function jacobiEigenvalues(input: Float64Array, n: number): number[] {
  const A = Float64Array.from(input);
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += A[p * n + q]! ** 2;
    if (off < 1e-30) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = A[p * n + q]!;
        if (apq === 0) continue;
        const theta = (A[q * n + q]! - A[p * n + p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = A[k * n + p]!;
          const akq = A[k * n + q]!;
          A[k * n + p] = c * akp - s * akq;
          A[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = A[p * n + k]!;
          const aqk = A[q * n + k]!;
          A[p * n + k] = c * apk - s * aqk;
          A[q * n + k] = s * apk + c * aqk;
        }
      }
    }
  }
  return Array.from({ length: n }, (_, i) => A[i * n + i]!);
}

/** Reference ‖W − J‖₂: √ of the largest Jacobi eigenvalue of (W − J)ᵀ(W − J), formed densely. */
function referenceRho(W: MixingMatrix): number {
  const { n, dense } = W;
  const M = dense.map((w) => w - 1 / n);
  const G = new Float64Array(n * n);
  for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) for (let i = 0; i < n; i++) G[a * n + b]! += M[i * n + a]! * M[i * n + b]!;
  return Math.sqrt(Math.max(0, ...jacobiEigenvalues(G, n)));
}

function randomRows(n: number, d: number, seed: number): Float64Array {
  const rng = Rng.derive(seed, "topology-test", n, d);
  return Float64Array.from({ length: n * d }, () => 2 * rng.nextFloat() - 1);
}

function isConnected(W: MixingMatrix): boolean {
  const seen = new Set([0]);
  const stack = [0];
  while (stack.length) for (const j of W.receive[stack.pop()!]!.from) if (!seen.has(j)) (seen.add(j), stack.push(j));
  return seen.size === W.n;
}

describe("topology builders", () => {
  test("every round is row and column stochastic, non-negative, symmetric where declared; receive lists match W", () => {
    fc.assert(
      fc.property(anyTopology, ([name, n, seed]) => {
        const t = build(name, n, seed);
        expect(t.name).toBe(name);
        expect(t.n).toBe(n);
        expect(t.rounds.length).toBeGreaterThanOrEqual(1);
        for (const W of t.rounds) {
          expect(isRowStochastic(W)).toBe(true);
          expect(isColumnStochastic(W)).toBe(true);
          if (t.symmetric) expect(isSymmetric(W)).toBe(true);
          W.receive.forEach(({ from, weights }, i) => {
            expect(Array.from(from)).toContain(i);
            let stored = 0;
            for (let k = 0; k < from.length; k++) {
              expect(weights[k]).toBe(W.dense[i * n + from[k]!]!);
              if (k > 0) expect(from[k]!).toBeGreaterThan(from[k - 1]!);
              stored++;
            }
            const nonzero = Array.from(W.dense.subarray(i * n, (i + 1) * n)).filter((w, j) => w !== 0 || j === i).length;
            expect(stored).toBe(nonzero);
          });
        }
      }),
      { numRuns: 300 },
    );
  });

  test("degrees: ring 2, torus 4, hypercube and exponential log₂n, one-peer 1, star and full n − 1", () => {
    const summary = (t: Topology) => summarizeTopology(t).degree;
    expect(summary(ring(16))).toBe(2);
    expect(summary(torus2d(25))).toBe(4);
    expect(summary(hypercube(32))).toBe(5);
    expect(summary(exponential(32))).toBe(5);
    expect(summary(exponential(20))).toBe(5);
    expect(summary(symmetricExponential(16))).toBe(7);
    expect(summary(onePeerExponential(64))).toBe(1);
    expect(summary(star(10))).toBe(9);
    expect(summary(fullyConnected(10))).toBe(9);
    expect(summary(mesh2d(16))).toBe(4);
  });

  test("small sizes stay sane: a node alone keeps its value; coinciding neighbours add up", () => {
    for (const name of TOPOLOGY_NAMES) expect(Array.from(build(name, 1, 1).rounds[0]!.dense)).toEqual([1]);
    expect(Array.from(ring(2).rounds[0]!.dense)).toEqual([0.5, 0.5, 0.5, 0.5]);
    // 2×2 torus: up and down are the same node, as are left and right.
    const W = torus2d(4).rounds[0]!;
    expect(Array.from(W.dense.subarray(0, 4))).toEqual([0.2, 0.4, 0.4, 0]);
    expect(Array.from(torus2d(1).rounds[0]!.dense)).toEqual([1]);
  });

  test("directions: static exponential i → i+2^k (node i receives from i − 2^k); one-peer round r is its edge i → i+2^r", () => {
    const n = 16;
    const W = exponential(n).rounds[0]!;
    expect(Array.from(W.receive[5]!.from)).toEqual([1, 3, 4, 5, 13]); // 5 − 1, 5 − 2, 5 − 4, 5 − 8 (mod 16)
    expect(Array.from(W.receive[0]!.from)).toEqual([0, 8, 12, 14, 15]);
    expect(W.dense[5 * n + 4]).toBeCloseTo(1 / 5, 15);
    expect(W.dense[4 * n + 5]).toBe(0);
    const rounds = onePeerExponential(n).rounds;
    expect(rounds.length).toBe(4);
    rounds.forEach((R, r) => {
      for (let i = 0; i < n; i++) {
        expect(Array.from(R.receive[i]!.from).sort((a, b) => a - b)).toEqual([(i - 2 ** r + n) % n, i].sort((a, b) => a - b));
        for (const j of R.receive[i]!.from) expect(W.dense[i * n + j]).toBeGreaterThan(0); // a subgraph of the static graph
      }
    });
  });

  test("mesh: the grid closest to square, no wrap", () => {
    const W = mesh2d(12).rounds[0]!; // 3 × 4
    expect(Array.from(W.receive[0]!.from)).toEqual([0, 1, 4]);
    expect(Array.from(W.receive[5]!.from)).toEqual([1, 4, 5, 6, 9]);
    expect(mesh2d(7).rounds[0]!.receive[3]!.from.length).toBe(3); // a prime makes a path
  });

  test("erdos-renyi is connected and reproducible by seed", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.double({ min: 0.2, max: 1, noNaN: true }), fc.nat(1e6), (n, p, seed) => {
        const a = erdosRenyi(n, p, seed).rounds[0]!;
        expect(isConnected(a)).toBe(true);
        expect(erdosRenyi(n, p, seed).rounds[0]!.dense).toEqual(a.dense);
      }),
      { numRuns: 60 },
    );
    const draws = new Set([1, 2, 3, 4, 5].map((seed) => erdosRenyi(30, 0.3, seed).rounds[0]!.dense.join()));
    expect(draws.size).toBe(5);
    expect(buildTopology("erdos-renyi", 20).rounds[0]!.dense).toEqual(erdosRenyi(20, 0.3, 1).rounds[0]!.dense);
  });

  test("bad names and sizes are UserErrors", () => {
    const cases: [() => unknown, RegExp][] = [
      [() => buildTopology("tree", 8), /unknown topology 'tree' \(topologies: ring, torus, .*erdos-renyi\)/],
      [() => buildTopology("ring", 0), /ring: node count must be an integer from 1 to 1024, got 0/],
      [() => buildTopology("full", 1025), /from 1 to 1024, got 1025/],
      [() => buildTopology("mesh", 2.5), /got 2.5/],
      [() => buildTopology("star", NaN), /got NaN/],
      [() => buildTopology("torus", 12), /torus needs a perfect-square node count .* got 12; try 9 or 16/],
      [() => buildTopology("hypercube", 6), /hypercube needs a power-of-two node count, got 6; try 4 or 8/],
      [() => buildTopology("erdos-renyi", 8, { p: 0 }), /p must be in \(0, 1\], got 0/],
      [() => buildTopology("erdos-renyi", 8, { p: 1.5 }), /got 1.5/],
      [() => buildTopology("erdos-renyi", 200, { p: 0.001 }), /no connected graph with n=200, p=0.001 in 100 draws/],
    ];
    for (const [call, message] of cases) {
      expect(call).toThrow(UserError);
      expect(call).toThrow(message);
    }
  });
});

describe("spectrum", () => {
  test("ρ(ring) = (1 + 2cos(2π/n))/3 for n ≥ 3", () => {
    for (let n = 3; n <= 64; n++) close(rho(ring(n).rounds[0]!), (1 + 2 * Math.cos((2 * Math.PI) / n)) / 3, 1e-9);
  });

  test("ρ(torus) = (3 + 2cos(2π/√n))/5 for side ≥ 3", () => {
    for (let side = 3; side <= 8; side++) close(rho(torus2d(side * side).rounds[0]!), (3 + 2 * Math.cos((2 * Math.PI) / side)) / 5, 1e-9);
  });

  test("ρ(exponential) = ρ(hypercube) = 1 − 2/(1 + log₂n) for n a power of two", () => {
    for (const n of powersOfTwo(7)) {
      const expected = 1 - 2 / (1 + Math.log2(n));
      close(rho(exponential(n).rounds[0]!), expected, 1e-9);
      close(rho(hypercube(n).rounds[0]!), expected, 1e-9);
    }
  });

  test("ρ(full) = 0, ρ(star) = 1 − 1/n (n ≥ 3), ρ(mesh 4×4) ≈ 0.8686", () => {
    for (let n = 1; n <= 64; n++) expect(rho(fullyConnected(n).rounds[0]!)).toBeLessThanOrEqual(1e-12);
    for (let n = 3; n <= 64; n++) close(rho(star(n).rounds[0]!), 1 - 1 / n, 1e-9);
    close(rho(mesh2d(16).rounds[0]!), 0.8686, 1e-3);
  });

  test("one-peer exponential: the product of log₂n rounds is exactly J for n a power of two", () => {
    for (const n of [1, ...powersOfTwo(8)]) {
      const t = onePeerExponential(n);
      expect(t.dynamic).toBe(true);
      expect(t.rounds.length).toBe(Math.max(1, ceilLog2(n)));
      const P = productOfRounds(t);
      for (const w of P.dense) close(w, 1 / n, 1e-12);
      expect(rhoOfPeriod(t)).toBe(0);
    }
    // Not a power of two: the period still mixes everyone, but not exactly.
    const t = onePeerExponential(12);
    expect(rhoOfPeriod(t)).toBeGreaterThan(0);
    expect(rhoOfPeriod(t)).toBeLessThan(1);
    const s = summarizeTopology(onePeerExponential(16));
    expect(s.period).toBe(4);
    close(s.rhoPerRound![0]!, Math.cos(Math.PI / 16), 1e-12); // ½(I + shift by 1): |½(1 + e^{2πi/n})|
    expect(s.rhoPerRound!.slice(1)).toEqual([1, 1, 1]); // shift by 2^r > 1 alone splits the ring
    expect(s.rho).toBe(1);
    expect(s.rhoOfProduct).toBe(0);
  });

  test("ρ matches an independent Jacobi reference on every topology (dense, circulant and non-symmetric paths)", () => {
    fc.assert(
      fc.property(anyTopology, ([name, n, seed]) => {
        if (n > 40) return; // keep the O(n³)-per-sweep reference quick
        const t = build(name, n, seed);
        for (const W of [...t.rounds, ...(t.dynamic ? [productOfRounds(t)] : [])]) close(rho(W), referenceRho(W), 1e-9);
      }),
      { numRuns: 200 },
    );
  });

  test("ρ of a random non-symmetric doubly stochastic matrix (a mix of permutations) matches the reference", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 24 }), fc.integer({ min: 1, max: 4 }), fc.nat(1e6), (n, count, seed) => {
        const rng = Rng.derive(seed, "permutations");
        const dense = new Float64Array(n * n);
        const shares = Array.from({ length: count }, () => 0.1 + rng.nextFloat());
        const total = shares.reduce((a, b) => a + b, 0);
        for (const share of shares) {
          const perm = rng.shuffleInPlace(Int32Array.from({ length: n }, (_, i) => i));
          for (let i = 0; i < n; i++) dense[i * n + perm[i]!]! += share / total;
        }
        const W = mixingMatrix(n, dense);
        expect(isRowStochastic(W) && isColumnStochastic(W)).toBe(true);
        close(rho(W), referenceRho(W), 1e-9);
      }),
      { numRuns: 60 },
    );
  });

  test("extremeEigenvalues agrees with Jacobi on random symmetric matrices, clustered and repeated spectra included", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 30 }), fc.nat(1e6), fc.boolean(), (n, seed, lowRank) => {
        const rng = Rng.derive(seed, "symmetric");
        const A = new Float64Array(n * n);
        if (lowRank) {
          // uuᵀ + vvᵀ: eigenvalue 0 repeated n − 2 times.
          const u = Array.from({ length: n }, () => rng.normal());
          const v = Array.from({ length: n }, () => rng.normal());
          for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) A[i * n + j] = u[i]! * u[j]! + v[i]! * v[j]!;
        } else {
          for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) A[i * n + j] = A[j * n + i] = rng.normal();
        }
        const reference = jacobiEigenvalues(A, n);
        const { min, max } = extremeEigenvalues(Float64Array.from(A), n);
        const scale = Math.max(1, ...reference.map(Math.abs));
        close(min, Math.min(...reference), 1e-11 * scale);
        close(max, Math.max(...reference), 1e-11 * scale);
      }),
      { numRuns: 100 },
    );
  });

  test("the fast circulant path is taken exactly where W is circulant", () => {
    for (const t of [ring(9), exponential(12), symmetricExponential(10), fullyConnected(5), ...onePeerExponential(8).rounds.map((W) => ({ rounds: [W] }))]) {
      expect(isCirculant(t.rounds[0]!)).toBe(true);
    }
    for (const t of [torus2d(16), mesh2d(16), hypercube(8), star(6)]) expect(isCirculant(t.rounds[0]!)).toBe(false);
  });
});

describe("mixing", () => {
  test("one step preserves the mean exactly and shrinks consensus distance by at least ρ²", () => {
    // A topology (its seed is a parameter of erdos-renyi), then node rows X for each round of its period.
    const topologyAndRows = fc.tuple(anyTopology, fc.integer({ min: 1, max: 5 })).chain(([[name, n, seed], d]) => {
      const t = build(name, n, seed);
      return fc.tuple(fc.constant({ name, n, d, t }), fc.array(floats(n * d), { minLength: t.rounds.length, maxLength: t.rounds.length }));
    });
    fc.assert(
      fc.property(topologyAndRows, ([{ n, d, t }, rows]) => {
        for (let step = 0; step < t.rounds.length; step++) {
          const W = mixingAt(t, step);
          const X = Float64Array.from(rows[step]!);
          const Y = mix(W, X);
          const before = mean(X, n);
          const after = mean(Y, n);
          for (let c = 0; c < d; c++) close(after[c]!, before[c]!, 1e-12);
          const r = rho(W);
          expect(consensusDistance(Y, n)).toBeLessThanOrEqual(r * r * consensusDistance(X, n) + 1e-12);
        }
      }),
      { numRuns: 300 },
    );
  });

  test("mix works on Float32Array node rows, writes into out, and agrees with the dense product", () => {
    const W = torus2d(9).rounds[0]!;
    const X = Float32Array.from(randomRows(9, 3, 7));
    const out = new Float32Array(27);
    expect(mix(W, X, out)).toBe(out);
    for (let i = 0; i < 9; i++) {
      for (let c = 0; c < 3; c++) {
        let expected = 0;
        for (let j = 0; j < 9; j++) expected += W.dense[i * 9 + j]! * X[j * 3 + c]!;
        close(out[i * 3 + c]!, expected, 1e-6);
      }
    }
    expect(() => mix(W, X, X)).toThrow(RangeError);
    expect(() => mix(W, new Float64Array(10))).toThrow(RangeError);
  });

  test("full mixing reaches consensus in one step; the one-peer period does too for n a power of two", () => {
    const X = randomRows(16, 4, 3);
    expect(consensusDistance(mix(fullyConnected(16).rounds[0]!, X), 16)).toBeLessThan(1e-28);
    let Y = X;
    const t = onePeerExponential(16);
    for (let step = 0; step < t.rounds.length; step++) Y = mix(mixingAt(t, step), Y);
    expect(consensusDistance(Y, 16)).toBeLessThan(1e-28);
    expect(consensusDistance(X, 16)).toBeGreaterThan(0.1);
  });
});

describe("skein topology", () => {
  async function run(...argv: string[]): Promise<{ code: number; stdout: string }> {
    const write = process.stdout.write;
    let stdout = "";
    process.stdout.write = ((chunk: string | Uint8Array) => ((stdout += String(chunk)), true)) as typeof process.stdout.write;
    try {
      const code = await topologyCommand(argv);
      return { code, stdout };
    } finally {
      process.stdout.write = write;
    }
  }

  test("--json prints one summary object", async () => {
    const r = await run("--name", "ring", "--nodes", "16", "--json");
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s).toMatchObject({ name: "ring", nodes: 16, degree: 2, symmetric: true, rowStochastic: true, columnStochastic: true });
    close(s.rho, (1 + 2 * Math.cos(Math.PI / 8)) / 3, 1e-12);
    close(s.spectralGap, 1 - s.rho, 1e-15);
    expect(s.period).toBeUndefined();
    const dynamic = JSON.parse((await run("--name", "one-peer-exponential", "--nodes", "8", "--json", "--matrix")).stdout);
    expect(dynamic).toMatchObject({ period: 3, rho: 1, rhoOfProduct: 0, rhoOfPeriod: 0, degree: 1, symmetric: false });
    expect(dynamic.matrix.length).toBe(3);
    expect(dynamic.matrix[0][1]).toEqual([0.5, 0.5, 0, 0, 0, 0, 0, 0]);
    const er = JSON.parse((await run("--name", "erdos-renyi", "--nodes", "12", "--p", "0.5", "--seed", "3", "--json")).stdout);
    expect(er).toMatchObject({ name: "erdos-renyi", p: 0.5, seed: 3, rowStochastic: true });
  });

  test("text output names every field; --matrix prints W; --help lists the topologies", async () => {
    const r = await run("--name", "one-peer-exponential", "--nodes", "4", "--matrix");
    for (const key of ["name", "nodes", "degree", "symmetric", "rowStochastic", "columnStochastic", "period", "rho", "rhoPerRound", "rhoOfPeriod", "spectralGap"]) {
      expect(r.stdout).toMatch(new RegExp(`^${key}\\s`, "m"));
    }
    expect(r.stdout).toContain("W (round 1):\n0.5000      0 0.5000      0\n");
    const help = await run("--help");
    expect(help.code).toBe(0);
    for (const name of TOPOLOGY_NAMES) expect(help.stdout).toContain(name);
  });

  test("bad flags and values are UserErrors", async () => {
    const cases: [string[], RegExp][] = [
      [[], /missing --name/],
      [["--name", "tree"], /--name tree: expected one of ring, torus/],
      [["--name", "ring", "--nodes", "0"], /--nodes 0: must be at least 1/],
      [["--name", "ring", "--nodes", "2000"], /--nodes 2000: must be at most 1024/],
      [["--name", "torus", "--nodes", "10"], /torus needs a perfect-square node count/],
      [["--name", "ring", "--p", "0.5"], /--p applies to --name erdos-renyi, not ring/],
      [["--name", "erdos-renyi", "--p", "0"], /--p 0: must be greater than 0/],
      [["--name", "ring", "--speed"], /unknown flag --speed/],
    ];
    for (const [argv, message] of cases) {
      const call = run(...argv);
      await expect(call).rejects.toThrow(UserError);
      await expect(run(...argv)).rejects.toThrow(message);
    }
  });
});
