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

export function mod(a: number, n: number): number {
  return ((a % n) + n) % n;
}

/** Smallest m with 2^m ≥ n; also the number of shifts 2^k below n. */
export function ceilLog2(n: number): number {
  let m = 0;
  while (2 ** m < n) m++;
  return m;
}
