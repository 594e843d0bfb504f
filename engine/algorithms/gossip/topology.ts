/**
 * Gossip topologies as data: who a node listens to, and with what weight.
 *
 * Convention — RECEIVE weights. Row i of W holds the weights node i gives to the values it receives:
 * one mixing step is x_i ← Σ_j w_ij x_j, i.e. X ← W·X with one row of X per node. (BlueFog stores
 * W[src, dst], what a node sends; our W is its transpose.) Every matrix built here is row stochastic
 * (a node's new value is an average, so consensus is a fixed point) and column stochastic (every
 * node's value carries total weight 1 into the next step, so the mean over nodes is preserved).
 *
 * Each topology is one small pure builder, BlueFog topology_util.py style. A static graph is one
 * matrix; a dynamic graph (one-peer exponential) is a period of matrices, step t mixing with
 * rounds[t mod period]. Each matrix is stored twice: dense (for analysis) and as per-node receive
 * lists of (neighbour, weight), self included, which is what the training code mixes with.
 *
 * Directions. The static exponential graph has edges i → i + 2^k (BlueFog's ExponentialTwoGraph), so
 * node i RECEIVES from i − 2^k. The one-peer exponential graph uses, in round r, the one edge
 * i → i + 2^r of that graph, so node i receives ½ from i − 2^r. Ying et al. (NeurIPS 2021) write both
 * graphs in receive form with +2^k, "½ from i + 2^r", the mirror image; either direction gives a
 * period product of exactly J for n a power of two and the same spectrum, and ours keeps every
 * one-peer round a subgraph of our static exponential graph.
 */
import { UserError } from "../../errors.ts";
import { Rng } from "../../rng.ts";

export const MAX_NODES = 1024;
const STOCHASTIC_TOLERANCE = 1e-12;

/** Node i's incoming weights: x_i ← Σ_k weights[k] · x_{from[k]}; self included, `from` ascending. */
export interface ReceiveList {
  readonly from: Int32Array;
  readonly weights: Float64Array;
}

export interface MixingMatrix {
  readonly n: number;
  /** Row-major: dense[i * n + j] = w_ij, the weight node i gives to x_j. */
  readonly dense: Float64Array;
  /** Per node, the nonzero entries of its row (its own entry always included). */
  readonly receive: readonly ReceiveList[];
}

export interface Topology {
  readonly name: TopologyName;
  readonly n: number;
  /** Declared by the builder: every round has W = Wᵀ (undirected edges, symmetric weights). */
  readonly symmetric: boolean;
  /** True for graphs that change every step; then `rounds` is one period. */
  readonly dynamic: boolean;
  readonly rounds: readonly MixingMatrix[];
}

export const TOPOLOGY_NAMES = [
  "ring",
  "torus",
  "mesh",
  "exponential",
  "symmetric-exponential",
  "one-peer-exponential",
  "hypercube",
  "star",
  "full",
  "erdos-renyi",
] as const;
export type TopologyName = (typeof TOPOLOGY_NAMES)[number];

export interface TopologyOptions {
  /** erdos-renyi: edge probability in (0, 1]. */
  p?: number;
  /** erdos-renyi: seed of the edge draws. */
  seed?: number;
}

export interface TopologyEntry {
  /** One line for --help: the graph and its weights. */
  about: string;
  build: (n: number, options: TopologyOptions) => Topology;
}

export const DEFAULT_ERDOS_RENYI_P = 0.3;
export const DEFAULT_ERDOS_RENYI_SEED = 1;

export const TOPOLOGIES: Record<TopologyName, TopologyEntry> = {
  ring: { about: "cycle, 1/3 self and each side", build: (n) => ring(n) },
  torus: { about: "√n×√n wrap-around grid, 1/5 self and 4 neighbours (n a perfect square)", build: (n) => torus2d(n) },
  mesh: { about: "2-D grid without wrap, Metropolis–Hastings weights", build: (n) => mesh2d(n) },
  exponential: { about: "static directed i → i+2^k, uniform 1/(1+⌈log₂n⌉)", build: (n) => exponential(n) },
  "symmetric-exponential": { about: "undirected i ↔ i±2^k, Metropolis–Hastings (= uniform) weights", build: (n) => symmetricExponential(n) },
  "one-peer-exponential": { about: "dynamic: round r, ½ self and ½ from i−2^r; period ⌈log₂n⌉", build: (n) => onePeerExponential(n) },
  hypercube: { about: "neighbours differ in one bit, uniform 1/(1+log₂n) (n a power of two)", build: (n) => hypercube(n) },
  star: { about: "node 0 the centre, Metropolis–Hastings weights", build: (n) => star(n) },
  full: { about: "everyone averages with everyone, 1/n (= exact all-reduce)", build: (n) => fullyConnected(n) },
  "erdos-renyi": {
    about: `random graph G(n, p), redrawn until connected, Metropolis–Hastings weights (--p, default ${DEFAULT_ERDOS_RENYI_P}; --seed)`,
    build: (n, o) => erdosRenyi(n, o.p ?? DEFAULT_ERDOS_RENYI_P, o.seed ?? DEFAULT_ERDOS_RENYI_SEED),
  },
};

/** The named topology for n nodes; any bad name or size is a UserError naming it. */
export function buildTopology(name: string, n: number, options: TopologyOptions = {}): Topology {
  const entry = (TOPOLOGIES as Record<string, TopologyEntry | undefined>)[name];
  if (!entry) throw new UserError(`unknown topology '${name}' (topologies: ${TOPOLOGY_NAMES.join(", ")})`);
  return entry.build(n, options);
}

/** The matrix that mixes at step t (a static graph has a period of one). */
export function mixingAt(topology: Topology, step: number): MixingMatrix {
  return topology.rounds[step % topology.rounds.length]!;
}

// ---------------------------------------------------------------------------------------------------
// Builders. Each fills a dense receive matrix; `+=` so that neighbours which coincide on small graphs
// (a 2×2 torus's up and down) add up their weights and the matrix stays doubly stochastic.

export function ring(n: number): Topology {
  checkNodes("ring", n);
  // BlueFog's RingGraph special case: with 2 nodes "each side" is the same node, and ½/½ is the
  // exact average (1/3 self + 2/3 other would mix strictly worse on the same single edge).
  if (n === 2) return staticTopology("ring", 2, true, new Float64Array(4).fill(0.5));
  const W = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    W[i * n + i]! += 1 / 3;
    W[i * n + mod(i - 1, n)]! += 1 / 3;
    W[i * n + mod(i + 1, n)]! += 1 / 3;
  }
  return staticTopology("ring", n, true, W);
}

export function torus2d(n: number): Topology {
  checkNodes("torus", n);
  const side = Math.round(Math.sqrt(n));
  if (side * side !== n) {
    throw new UserError(`torus needs a perfect-square node count (a √n×√n grid), got ${n}; try ${Math.floor(Math.sqrt(n)) ** 2} or ${(Math.floor(Math.sqrt(n)) + 1) ** 2}`);
  }
  const W = new Float64Array(n * n);
  const at = (r: number, c: number) => mod(r, side) * side + mod(c, side);
  for (let r = 0; r < side; r++) {
    for (let c = 0; c < side; c++) {
      const i = at(r, c);
      for (const j of [i, at(r - 1, c), at(r + 1, c), at(r, c - 1), at(r, c + 1)]) W[i * n + j]! += 1 / 5;
    }
  }
  return staticTopology("torus", n, true, W);
}

/** Rows × columns of the mesh: the factorisation of n closest to square (a prime n gives a path). */
export function meshShape(n: number): [rows: number, cols: number] {
  let rows = Math.floor(Math.sqrt(n));
  while (n % rows !== 0) rows--;
  return [rows, n / rows];
}

export function mesh2d(n: number): Topology {
  checkNodes("mesh", n);
  const [rows, cols] = meshShape(n);
  const neighbours: number[][] = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const list: number[] = [];
      if (r > 0) list.push((r - 1) * cols + c);
      if (r < rows - 1) list.push((r + 1) * cols + c);
      if (c > 0) list.push(r * cols + c - 1);
      if (c < cols - 1) list.push(r * cols + c + 1);
      neighbours.push(list);
    }
  }
  return staticTopology("mesh", n, true, metropolisHastings(neighbours));
}

export function exponential(n: number): Topology {
  checkNodes("exponential", n);
  // The shifts 2^k < n are distinct mod n, so every node has exactly ⌈log₂n⌉ in- and out-neighbours:
  // a circulant matrix, row and column stochastic, not symmetric (i hears i − 1 but not i + 1).
  const weight = 1 / (1 + ceilLog2(n));
  const W = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    W[i * n + i]! += weight;
    for (let shift = 1; shift < n; shift *= 2) W[i * n + mod(i - shift, n)]! += weight;
  }
  return staticTopology("exponential", n, false, W);
}

/**
 * The exponential graph with its edges made undirected. Metropolis–Hastings weights: the graph is a
 * circulant (hence regular), so they come out uniform, 1/(1+d) with d the number of distinct
 * neighbours (2⌈log₂n⌉ − 1 for n a power of two, where i + n/2 and i − n/2 coincide).
 */
export function symmetricExponential(n: number): Topology {
  checkNodes("symmetric-exponential", n);
  const neighbours: number[][] = [];
  for (let i = 0; i < n; i++) {
    const set = new Set<number>();
    for (let shift = 1; shift < n; shift *= 2) set.add(mod(i + shift, n)).add(mod(i - shift, n));
    neighbours.push([...set]);
  }
  return staticTopology("symmetric-exponential", n, true, metropolisHastings(neighbours));
}

export function onePeerExponential(n: number): Topology {
  checkNodes("one-peer-exponential", n);
  const rounds: MixingMatrix[] = [];
  for (let shift = 1; shift < n; shift *= 2) {
    const W = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      W[i * n + i]! += 0.5;
      W[i * n + mod(i - shift, n)]! += 0.5;
    }
    rounds.push(mixingMatrix(n, W));
  }
  if (rounds.length === 0) rounds.push(mixingMatrix(1, Float64Array.of(1)));
  return { name: "one-peer-exponential", n, symmetric: n <= 2, dynamic: true, rounds };
}

export function hypercube(n: number): Topology {
  checkNodes("hypercube", n);
  if ((n & (n - 1)) !== 0) {
    throw new UserError(`hypercube needs a power-of-two node count, got ${n}; try ${2 ** Math.floor(Math.log2(n))} or ${2 ** Math.ceil(Math.log2(n))}`);
  }
  const dims = ceilLog2(n);
  const weight = 1 / (1 + dims);
  const W = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    W[i * n + i]! += weight;
    for (let k = 0; k < dims; k++) W[i * n + (i ^ (1 << k))]! += weight;
  }
  return staticTopology("hypercube", n, true, W);
}

/** Node 0 is the centre. Metropolis–Hastings: each leaf gives 1/n to the centre, keeps 1 − 1/n. */
export function star(n: number): Topology {
  checkNodes("star", n);
  const neighbours = Array.from({ length: n }, (_, i) => (i === 0 ? Array.from({ length: n - 1 }, (_, j) => j + 1) : [0]));
  return staticTopology("star", n, true, metropolisHastings(neighbours));
}

export function fullyConnected(n: number): Topology {
  checkNodes("full", n);
  return staticTopology("full", n, true, new Float64Array(n * n).fill(1 / n));
}

const ERDOS_RENYI_ATTEMPTS = 100;

/**
 * G(n, p): each undirected edge independently with probability p, drawn from (seed, n, p, attempt);
 * a disconnected draw can never reach consensus, so draw again, up to a bound.
 */
export function erdosRenyi(n: number, p: number, seed: number): Topology {
  checkNodes("erdos-renyi", n);
  if (!(p > 0 && p <= 1)) throw new UserError(`erdos-renyi: edge probability p must be in (0, 1], got ${p}`);
  if (!Number.isSafeInteger(seed)) throw new UserError(`erdos-renyi: seed must be an integer, got ${seed}`);
  for (let attempt = 0; attempt < ERDOS_RENYI_ATTEMPTS; attempt++) {
    const rng = Rng.derive(seed, "erdos-renyi", n, p, attempt);
    const neighbours: number[][] = Array.from({ length: n }, () => []);
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        if (rng.nextFloat() < p) {
          neighbours[i]!.push(j);
          neighbours[j]!.push(i);
        }
      }
    }
    if (isConnected(neighbours)) return staticTopology("erdos-renyi", n, true, metropolisHastings(neighbours));
  }
  const threshold = Math.log(n) / n; // G(n, p) is connected with high probability above ln(n)/n
  throw new UserError(`erdos-renyi: no connected graph with n=${n}, p=${p} in ${ERDOS_RENYI_ATTEMPTS} draws (seed ${seed}); raise --p well above ln(n)/n ≈ ${threshold.toPrecision(2)}`);
}

/**
 * Metropolis–Hastings weights on an undirected graph (lists without self or duplicates):
 * w_ij = 1/(1 + max(d_i, d_j)), self takes the rest. Symmetric and doubly stochastic on any graph,
 * and each node needs only its neighbours' degrees; self ≥ 1/(1 + d_i) > 0.
 */
function metropolisHastings(neighbours: readonly (readonly number[])[]): Float64Array {
  const n = neighbours.length;
  const W = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    let given = 0;
    for (const j of neighbours[i]!) {
      const w = 1 / (1 + Math.max(neighbours[i]!.length, neighbours[j]!.length));
      W[i * n + j] = w;
      given += w;
    }
    W[i * n + i] = 1 - given;
  }
  return W;
}

function isConnected(neighbours: readonly (readonly number[])[]): boolean {
  const seen = new Uint8Array(neighbours.length);
  const stack = [0];
  seen[0] = 1;
  let reached = 1;
  while (stack.length > 0) {
    for (const j of neighbours[stack.pop()!]!) {
      if (!seen[j]) {
        seen[j] = 1;
        reached++;
        stack.push(j);
      }
    }
  }
  return reached === neighbours.length;
}

function checkNodes(name: string, n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > MAX_NODES) throw new UserError(`${name}: node count must be an integer from 1 to ${MAX_NODES}, got ${n}`);
}

function staticTopology(name: TopologyName, n: number, symmetric: boolean, dense: Float64Array): Topology {
  return { name, n, symmetric, dynamic: false, rounds: [mixingMatrix(n, dense)] };
}

/** Wraps a dense receive matrix with its per-node receive lists. */
export function mixingMatrix(n: number, dense: Float64Array): MixingMatrix {
  if (dense.length !== n * n) throw new RangeError(`mixingMatrix: ${dense.length} entries for n = ${n}`);
  const receive: ReceiveList[] = [];
  for (let i = 0; i < n; i++) {
    const from: number[] = [];
    const weights: number[] = [];
    for (let j = 0; j < n; j++) {
      const w = dense[i * n + j]!;
      if (w !== 0 || j === i) {
        from.push(j);
        weights.push(w);
      }
    }
    receive.push({ from: Int32Array.from(from), weights: Float64Array.from(weights) });
  }
  return { n, dense, receive };
}

function mod(a: number, n: number): number {
  return ((a % n) + n) % n;
}

/** Smallest m with 2^m ≥ n; also the number of shifts 2^k below n. */
export function ceilLog2(n: number): number {
  let m = 0;
  while (2 ** m < n) m++;
  return m;
}

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

/**
 * Smallest and largest eigenvalue of a dense symmetric matrix (row-major, destroyed): Householder
 * reduction to tridiagonal form, then Sturm-sequence bisection for the two ends of the spectrum.
 * Why not Jacobi or power iteration: a Jacobi sweep is O(n³) and needs several; power iteration
 * crawls when the top eigenvalues cluster (a ring's are 1 − O(1/n²) apart). Householder is one
 * O(n³)-ish pass (2/3·n³ multiply-adds, on the lower triangle) and bisection is accurate to a few ulps.
 */
export function extremeEigenvalues(A: Float64Array, n: number): { min: number; max: number } {
  const diagonal = new Float64Array(n);
  const offDiagonal = new Float64Array(Math.max(n - 1, 0)); // offDiagonal[k] couples k and k + 1
  tridiagonalize(A, n, diagonal, offDiagonal);
  return { min: tridiagonalEigenvalue(diagonal, offDiagonal, 0), max: tridiagonalEigenvalue(diagonal, offDiagonal, n - 1) };
}

/**
 * Householder tridiagonalisation working on the lower triangle only. Step k reflects rows/columns
 * k+1.. so that column k below the subdiagonal becomes zero; the trailing block B gets the symmetric
 * rank-2 update B ← B − v qᵀ − q vᵀ with p = βBv, q = p − (β vᵀp / 2) v, β = 2 / vᵀv.
 */
function tridiagonalize(A: Float64Array, n: number, diagonal: Float64Array, offDiagonal: Float64Array): void {
  const v = new Float64Array(n);
  const p = new Float64Array(n);
  for (let k = 0; k < n - 2; k++) {
    // x = A[k+1.., k], read from the lower triangle: A[i][k] for i > k.
    let norm2 = 0;
    for (let i = k + 1; i < n; i++) norm2 += A[i * n + k]! ** 2;
    const x0 = A[(k + 1) * n + k]!;
    diagonal[k] = A[k * n + k]!;
    if (norm2 - x0 * x0 <= 0) {
      offDiagonal[k] = x0; // already zero below the subdiagonal
      continue;
    }
    const alpha = x0 >= 0 ? -Math.sqrt(norm2) : Math.sqrt(norm2);
    for (let i = k + 1; i < n; i++) v[i] = A[i * n + k]!;
    v[k + 1] = x0 - alpha;
    const vv = norm2 - 2 * alpha * x0 + alpha * alpha;
    const beta = 2 / vv;
    // p = β B v, B symmetric stored in its lower triangle: each stored entry serves two products.
    for (let i = k + 1; i < n; i++) p[i] = 0;
    for (let i = k + 1; i < n; i++) {
      const row = i * n;
      const vi = v[i]!;
      let sum = 0;
      for (let j = k + 1; j < i; j++) {
        const a = A[row + j]!;
        sum += a * v[j]!;
        p[j]! += a * vi;
      }
      p[i]! += sum + A[row + i]! * vi;
    }
    let vp = 0;
    for (let i = k + 1; i < n; i++) {
      p[i]! *= beta;
      vp += v[i]! * p[i]!;
    }
    const half = (beta * vp) / 2;
    for (let i = k + 1; i < n; i++) p[i]! -= half * v[i]!; // p is now q
    for (let i = k + 1; i < n; i++) {
      const row = i * n;
      const vi = v[i]!;
      const qi = p[i]!;
      for (let j = k + 1; j <= i; j++) A[row + j]! -= vi * p[j]! + qi * v[j]!;
    }
    offDiagonal[k] = alpha;
  }
  if (n >= 2) {
    diagonal[n - 2] = A[(n - 2) * n + n - 2]!;
    offDiagonal[n - 2] = A[(n - 1) * n + n - 2]!;
  }
  if (n >= 1) diagonal[n - 1] = A[(n - 1) * n + n - 1]!;
}

/** The index-th smallest eigenvalue (0-based) of a symmetric tridiagonal matrix, by bisection. */
function tridiagonalEigenvalue(diagonal: Float64Array, offDiagonal: Float64Array, index: number): number {
  const n = diagonal.length;
  // Gershgorin: every eigenvalue lies within |d_i| + |e_{i-1}| + |e_i| of zero.
  let bound = 0;
  for (let i = 0; i < n; i++) {
    bound = Math.max(bound, Math.abs(diagonal[i]!) + Math.abs(offDiagonal[i - 1] ?? 0) + Math.abs(offDiagonal[i] ?? 0));
  }
  let lo = -bound - 1e-300;
  let hi = bound + 1e-300;
  // Invariant: fewer than index + 1 eigenvalues below lo, at least index + 1 below hi.
  for (let iteration = 0; iteration < 200; iteration++) {
    const mid = lo + (hi - lo) / 2;
    if (mid <= lo || mid >= hi) break; // adjacent doubles: as precise as it gets
    if (eigenvaluesBelow(diagonal, offDiagonal, mid) > index) hi = mid;
    else lo = mid;
  }
  return lo + (hi - lo) / 2;
}

/** Sturm count: the number of negative pivots of T − xI = LDLᵀ is the number of eigenvalues below x. */
function eigenvaluesBelow(diagonal: Float64Array, offDiagonal: Float64Array, x: number): number {
  const PIVOT_FLOOR = 1e-290; // a zero pivot is nudged negative, as LAPACK's dstebz does
  let count = 0;
  let pivot = 1;
  for (let i = 0; i < diagonal.length; i++) {
    const e = i > 0 ? offDiagonal[i - 1]! : 0;
    pivot = diagonal[i]! - x - (i > 0 ? (e * e) / pivot : 0);
    if (Math.abs(pivot) < PIVOT_FLOOR) pivot = -PIVOT_FLOOR;
    if (pivot < 0) count++;
  }
  return count;
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
    symmetric: rounds.every((W) => isSymmetric(W)),
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

// ---------------------------------------------------------------------------------------------------
// Mixing primitives on node-major arrays: X holds n rows of d values (row i = node i's vector).

export type NodeRows = Float64Array | Float32Array;

/** W·X: every node replaced by the weighted sum of what it receives (accumulated in f64). */
export function mix<T extends NodeRows>(W: MixingMatrix, X: T, out?: T): T {
  const { n } = W;
  if (X.length % n !== 0) throw new RangeError(`mix: ${X.length} values do not split into ${n} node rows`);
  const d = X.length / n;
  const result = out ?? (new (X.constructor as new (length: number) => T)(X.length));
  if (result === X || result.length !== X.length) throw new RangeError("mix: out must be a separate array of X's length");
  const row = new Float64Array(d);
  W.receive.forEach(({ from, weights }, i) => {
    row.fill(0);
    for (let k = 0; k < from.length; k++) {
      const w = weights[k]!;
      const base = from[k]! * d;
      for (let c = 0; c < d; c++) row[c]! += w * X[base + c]!;
    }
    result.set(row, i * d);
  });
  return result;
}

/** x̄ = (1/n) Σ_i x_i, a vector of d values. */
export function mean(X: NodeRows, n: number): Float64Array {
  if (!(n >= 1) || X.length % n !== 0) throw new RangeError(`mean: ${X.length} values do not split into ${n} node rows`);
  const d = X.length / n;
  const average = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let c = 0; c < d; c++) average[c]! += X[i * d + c]!;
  for (let c = 0; c < d; c++) average[c]! /= n;
  return average;
}

/** (1/n) Σ_i ‖x_i − x̄‖²: how far the nodes are from agreeing. */
export function consensusDistance(X: NodeRows, n: number): number {
  const average = mean(X, n);
  const d = average.length;
  let sum = 0;
  for (let i = 0; i < n; i++) for (let c = 0; c < d; c++) sum += (X[i * d + c]! - average[c]!) ** 2;
  return sum / n;
}
