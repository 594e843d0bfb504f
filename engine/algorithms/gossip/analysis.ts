/**
 * What a topology's matrices are: stochastic or not, symmetric or not, how many messages a node
 * receives, and how fast mixing contracts disagreement (ρ = ‖W − J‖₂ and the spectral gap 1 − ρ),
 * for one matrix and over the period of a dynamic graph.
 */
import { mixingMatrix, mod, type MixingMatrix, type Topology, type TopologyName } from "./topology.ts";
import { extremeEigenvalues } from "./eigen.ts";

const STOCHASTIC_TOLERANCE = 1e-12;

// ---------------------------------------------------------------------------------------------------
// Checks.

export function isRowStochastic(W: MixingMatrix, tolerance = STOCHASTIC_TOLERANCE): boolean {
  const { n, dense } = W;
  for (let i = 0; i < n; i++) {
    let sum = 0;
    for (let j = 0; j < n; j++) {
      const w = dense[i * n + j]!;
      if (w < 0) return false;
      sum += w;
    }
    if (Math.abs(sum - 1) > tolerance) return false;
  }
  return true;
}

export function isColumnStochastic(W: MixingMatrix, tolerance = STOCHASTIC_TOLERANCE): boolean {
  const { n, dense } = W;
  const sums = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const w = dense[i * n + j]!;
      if (w < 0) return false;
      sums[j]! += w;
    }
  }
  return sums.every((s) => Math.abs(s - 1) <= tolerance);
}

export function isSymmetric(W: MixingMatrix, tolerance = STOCHASTIC_TOLERANCE): boolean {
  const { n, dense } = W;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < i; j++) if (Math.abs(dense[i * n + j]! - dense[j * n + i]!) > tolerance) return false;
  }
  return true;
}

/** Largest number of other nodes one node receives from (self excluded): messages per node per step. */
export function degree(W: MixingMatrix): number {
  let most = 0;
  W.receive.forEach((r, i) => {
    let d = 0;
    for (let k = 0; k < r.from.length; k++) if (r.from[k] !== i && r.weights[k] !== 0) d++;
    most = Math.max(most, d);
  });
  return most;
}

// ---------------------------------------------------------------------------------------------------
// Spectrum. ρ = ‖W − J‖₂, the largest singular value of W − J: for doubly stochastic W one mixing
// step contracts every deviation from the mean by at least ρ (‖(W − J)X‖ ≤ ρ‖X − JX‖).

/**
 * ‖W − J‖₂ with J = 11ᵀ/n. A result below ROUNDING_RHO is reported as 0: it means W equals J to
 * working precision (the one-peer period product, the 3-node ring), and a rounding residue of 1e-17
 * would otherwise turn into a meaningless rate like (1e-17)^(1/period) ≈ 1e-4.
 */
export function rho(W: MixingMatrix): number {
  const r = rhoUnrounded(W);
  return r < ROUNDING_RHO ? 0 : r;
}
const ROUNDING_RHO = 1e-12;

function rhoUnrounded(W: MixingMatrix): number {
  const { n, dense } = W;
  if (isCirculant(W)) return rhoOfCirculant(dense, n);
  if (isSymmetric(W)) {
    const M = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) M[i * n + j] = (dense[i * n + j]! + dense[j * n + i]!) / 2 - 1 / n;
    }
    const { min, max } = extremeEigenvalues(M, n);
    return Math.max(Math.abs(min), Math.abs(max));
  }
  return Math.sqrt(Math.max(0, extremeEigenvalues(gramOfDeviation(W), n).max));
}

export function spectralGap(W: MixingMatrix): number {
  return 1 - rho(W);
}

/**
 * W[i][j] = c[(j − i) mod n] for one vector c — ring, exponential, symmetric exponential, every
 * one-peer round and full are. Exact comparison: the builders write identical weights.
 */
export function isCirculant(W: MixingMatrix): boolean {
  const { n, dense } = W;
  for (let i = 1; i < n; i++) {
    for (let j = 0; j < n; j++) if (dense[i * n + j] !== dense[mod(j - i, n)]) return false;
  }
  return true;
}

/**
 * Why a special path: the DFT diagonalises every circulant matrix, so they are normal and their
 * singular values are the moduli of the eigenvalues λ_k = Σ_j c_j ω^{jk}. That is O(n·degree) per
 * matrix against O(n³) for the dense path, which at n = 256 over a one-peer period (8 rounds and their
 * product) would cost most of the CLI's budget. J is the k = 0 projector, so W − J has the spectrum
 * {λ_0 − 1} ∪ {λ_k : k ≠ 0}.
 */
function rhoOfCirculant(dense: Float64Array, n: number): number {
  const shifts: number[] = [];
  for (let j = 0; j < n; j++) if (dense[j] !== 0) shifts.push(j);
  let largest = 0;
  for (let k = 0; k < n; k++) {
    let re = 0;
    let im = 0;
    for (const j of shifts) {
      const angle = (2 * Math.PI * ((j * k) % n)) / n;
      re += dense[j]! * Math.cos(angle);
      im += dense[j]! * Math.sin(angle);
    }
    if (k === 0) re -= 1;
    largest = Math.max(largest, Math.hypot(re, im));
  }
  return largest;
}

/**
 * (W − J)ᵀ(W − J) = WᵀW − c1ᵀ/n − 1cᵀ/n + J, with c = Wᵀ1 the column sums. WᵀW from the receive
 * lists costs Σ_i deg_i² instead of the n³ of a dense product.
 */
function gramOfDeviation(W: MixingMatrix): Float64Array {
  const { n } = W;
  const G = new Float64Array(n * n);
  const columnSums = new Float64Array(n);
  for (const { from, weights } of W.receive) {
    for (let a = 0; a < from.length; a++) {
      const wa = weights[a]!;
      const row = from[a]! * n;
      columnSums[from[a]!]! += wa;
      for (let b = 0; b < from.length; b++) G[row + from[b]!]! += wa * weights[b]!;
    }
  }
  for (let a = 0; a < n; a++) {
    for (let b = 0; b < n; b++) G[a * n + b]! += (1 - columnSums[a]! - columnSums[b]!) / n;
  }
  return G;
}

// ---------------------------------------------------------------------------------------------------
// Dynamic graphs.

/** Π W_r over one period, round 0 applied first: W_{p−1} ··· W_1 W_0. */
export function productOfRounds(topology: Topology): MixingMatrix {
  const n = topology.n;
  let P = identity(n);
  for (const W of topology.rounds) P = multiply(W, P);
  return mixingMatrix(n, P);
}

/** ‖Π W_r − J‖₂^(1/period): the contraction per step, averaged geometrically over one period. */
export function rhoOfPeriod(topology: Topology): number {
  return rho(productOfRounds(topology)) ** (1 / topology.rounds.length);
}

function identity(n: number): Float64Array {
  const I = new Float64Array(n * n);
  for (let i = 0; i < n; i++) I[i * n + i] = 1;
  return I;
}

/** W · B for sparse W and dense B (n×n). */
function multiply(W: MixingMatrix, B: Float64Array): Float64Array {
  const { n } = W;
  const out = new Float64Array(n * n);
  W.receive.forEach(({ from, weights }, i) => {
    for (let k = 0; k < from.length; k++) {
      const w = weights[k]!;
      const row = from[k]! * n;
      for (let j = 0; j < n; j++) out[i * n + j]! += w * B[row + j]!;
    }
  });
  return out;
}

export interface TopologySummary {
  name: TopologyName;
  nodes: number;
  /** Largest in-degree (self excluded) over all rounds. */
  degree: number;
  symmetric: boolean;
  rowStochastic: boolean;
  columnStochastic: boolean;
  /**
   * Static: ‖W − J‖₂. Dynamic: the largest per-round ρ — conservative, but it is the factor that
   * every single step is guaranteed to contract by (a one-peer round alone has ρ = 1 for n ≥ 4:
   * its graph is disconnected). rhoOfPeriod gives the per-step rate over a whole period.
   */
  rho: number;
  spectralGap: number;
  period?: number;
  rhoPerRound?: number[];
  rhoOfProduct?: number;
  rhoOfPeriod?: number;
}

export function summarizeTopology(topology: Topology): TopologySummary {
  const { rounds } = topology;
  const rhoPerRound = rounds.map(rho);
  const worst = Math.max(...rhoPerRound);
  const summary: TopologySummary = {
    name: topology.name,
    nodes: topology.n,
    degree: Math.max(...rounds.map(degree)),
    symmetric: topology.symmetric,
    rowStochastic: rounds.every((W) => isRowStochastic(W)),
    columnStochastic: rounds.every((W) => isColumnStochastic(W)),
    rho: worst,
    spectralGap: 1 - worst,
  };
  if (topology.dynamic) {
    const ofProduct = rho(productOfRounds(topology));
    summary.period = rounds.length;
    summary.rhoPerRound = rhoPerRound;
    summary.rhoOfProduct = ofProduct;
    summary.rhoOfPeriod = ofProduct ** (1 / rounds.length);
  }
  return summary;
}
