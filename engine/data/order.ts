/**
 * Which samples, in which order: per-epoch shuffles and the split of a training set across the
 * nodes of decentralized training.
 *
 * Both are pure functions of their arguments (no Rng is carried between calls), so a run resumed at
 * epoch 7 draws exactly the order the uninterrupted run drew, and every gossip node can compute
 * every other node's shard without talking to it.
 */
import { UserError } from "../errors.ts";
import { Rng } from "../rng.ts";

/** A uniformly random permutation of 0..count-1 that depends only on (count, seed, epoch). */
export function epochOrder(count: number, seed: number, epoch: number): Uint32Array {
  return epochOrderInto(new Uint32Array(count), seed, epoch);
}

/** epochOrder(order.length, seed, epoch), written into `order` (a view of shared memory, say). */
export function epochOrderInto(order: Uint32Array, seed: number, epoch: number): Uint32Array {
  for (let i = 0; i < order.length; i++) order[i] = i;
  return Rng.derive(seed, "epoch", epoch).shuffleInPlace(order);
}

export type PartitionSpec = { kind: "iid" } | { kind: "sorted" } | { kind: "dirichlet"; alpha: number };

const PARTITION_HELP = "iid, sorted, dirichlet:ALPHA (ALPHA > 0, e.g. dirichlet:0.5)";

export function parsePartitionSpec(spec: string): PartitionSpec {
  if (spec === "iid") return { kind: "iid" };
  if (spec === "sorted") return { kind: "sorted" };
  const match = /^dirichlet:(.+)$/.exec(spec);
  if (match) {
    const alpha = Number(match[1]);
    if (!(alpha > 0) || !Number.isFinite(alpha)) throw new UserError(`partition ${spec}: ALPHA must be a positive number`);
    return { kind: "dirichlet", alpha };
  }
  throw new UserError(`partition ${JSON.stringify(spec)}: unknown; valid: ${PARTITION_HELP}`);
}

/**
 * Splits the sample indices 0..labels.length-1 into `parts` disjoint, non-empty shards:
 *  - `iid`: a random shuffle cut into equal shards (sizes differ by at most one);
 *  - `sorted`: indices ordered by label (stable), cut into equal contiguous shards — the
 *    "pathological non-IID" split of McMahan et al. where each node sees one or two classes;
 *  - `dirichlet:ALPHA`: for each class, proportions p ~ Dir(ALPHA·1) over the parts and the class's
 *    samples dealt out accordingly (Hsu et al. 2019); small ALPHA → each node dominated by few classes.
 * Each shard is returned in ascending index order (a shard is a set; training shuffles it).
 */
export function partition(labels: Uint8Array, parts: number, spec: string | PartitionSpec, seed: number): Uint32Array[] {
  const parsed = typeof spec === "string" ? parsePartitionSpec(spec) : spec;
  const count = labels.length;
  if (!Number.isInteger(parts) || parts < 1) throw new UserError(`partition: parts must be a positive integer, got ${parts}`);
  if (parts > count) throw new UserError(`partition: cannot split ${count} samples into ${parts} non-empty parts`);

  let shards: number[][];
  switch (parsed.kind) {
    case "iid": {
      const order = Rng.derive(seed, "partition", "iid").shuffleInPlace(identity(count));
      shards = cutEvenly(Array.from(order), parts);
      break;
    }
    case "sorted": {
      const byLabel = Array.from(identity(count)).sort((a, b) => labels[a]! - labels[b]! || a - b);
      shards = cutEvenly(byLabel, parts);
      break;
    }
    case "dirichlet":
      shards = dirichletShards(labels, parts, parsed.alpha, seed);
      break;
  }
  return shards.map((s) => Uint32Array.from(s).sort());
}

function identity(n: number): Uint32Array {
  const a = new Uint32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  return a;
}

/** Contiguous cuts whose sizes differ by at most one (the first count % parts get one more). */
function cutEvenly(items: number[], parts: number): number[][] {
  const base = Math.floor(items.length / parts);
  const extra = items.length % parts;
  const shards: number[][] = [];
  let at = 0;
  for (let p = 0; p < parts; p++) {
    const size = base + (p < extra ? 1 : 0);
    shards.push(items.slice(at, at + size));
    at += size;
  }
  return shards;
}

function dirichletShards(labels: Uint8Array, parts: number, alpha: number, seed: number): number[][] {
  const byClass = new Map<number, number[]>();
  labels.forEach((label, i) => {
    let list = byClass.get(label);
    if (!list) byClass.set(label, (list = []));
    list.push(i);
  });
  const shards: number[][] = Array.from({ length: parts }, () => []);
  for (const [label, members] of [...byClass].sort((a, b) => a[0] - b[0])) {
    // One stream per class so adding a class elsewhere does not reshuffle this one.
    const rng = Rng.derive(seed, "partition", "dirichlet", label);
    rng.shuffleInPlace(members);
    const weights = Array.from({ length: parts }, () => rng.gamma(alpha));
    let total = weights.reduce((a, b) => a + b, 0);
    // Tiny ALPHA can underflow every Gamma draw to 0: give the whole class to one random part.
    if (!(total > 0)) {
      weights.fill(0);
      weights[rng.int(parts)] = 1;
      total = 1;
    }
    // Cut points from the cumulative proportions, so the shard sizes sum to the class size exactly.
    let cumulative = 0;
    let start = 0;
    for (let p = 0; p < parts; p++) {
      cumulative += weights[p]!;
      const end = p === parts - 1 ? members.length : Math.round((cumulative / total) * members.length);
      for (let k = start; k < end; k++) shards[p]!.push(members[k]!);
      start = Math.max(start, end);
    }
  }
  fillEmptyShards(shards);
  return shards;
}

/**
 * Small ALPHA leaves some parts with nothing, and a node with no data cannot take a step: move one
 * sample at a time from the currently largest shard into each empty one. Deterministic (ties go to
 * the lowest part index) and it changes the Dirichlet split as little as possible.
 */
function fillEmptyShards(shards: number[][]): void {
  for (const empty of shards) {
    if (empty.length > 0) continue;
    let largest = shards[0]!;
    for (const s of shards) if (s.length > largest.length) largest = s;
    empty.push(largest.pop()!);
  }
}
