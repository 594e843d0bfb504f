/**
 * From flags to a gossip run: the topology's mixing matrices, the data partition, and the checks that
 * refuse combinations known to fail.
 */
import { partition } from "../../data/order.ts";
import type { Dataset } from "../../data/types.ts";
import { UserError } from "../../errors.ts";
import type { OptimizerConfig } from "../../optim/optimizer.ts";
import { GOSSIP_ALGORITHMS, type GossipAlgorithm, type GossipOptions, type MixingSchedule } from "./gossip.ts";
import { buildTopology, isSymmetric, type Topology } from "./topology.ts";

export interface GossipConfig {
  topology: string;
  nodes: number;
  /** iid | sorted | dirichlet:ALPHA */
  partition: string;
  /** Run DecentLaM with momentum on a non-symmetric topology anyway. */
  force: boolean;
}

export const DEFAULT_GOSSIP: GossipConfig = { topology: "ring", nodes: 8, partition: "iid", force: false };

export const isGossip = (algo: string): algo is GossipAlgorithm => (GOSSIP_ALGORITHMS as readonly string[]).includes(algo);

export function gossipOptions(algorithm: GossipAlgorithm, g: GossipConfig, dataset: Dataset, seed: number, optimizer: OptimizerConfig): GossipOptions {
  if (optimizer.kind !== "sgd" && optimizer.kind !== "momentum") {
    throw new UserError(`--optimizer ${optimizer.kind}: ${algorithm} has its own update rule; use momentum (β = --momentum) or sgd (β = 0)`);
  }
  const topology = buildTopology(g.topology, g.nodes, { seed });
  const beta = optimizer.kind === "sgd" ? 0 : optimizer.momentum;
  // Heavy-ball gossip z² − (λ + β)z + β = 0 is stable for real eigenvalues λ of a symmetric W; on
  // directed exponential and one-peer graphs DecentLaM diverges at β = 0.9 in a numerical check, where
  // DmSGD stays stable (docs/ALGORITHMS.md §6.2).
  if (algorithm === "decentlam" && beta > 0 && !topologySymmetric(topology) && !g.force) {
    throw new UserError(`--algo decentlam with momentum ${beta} is unstable on the non-symmetric ${g.topology} topology; use a symmetric one, --momentum 0, or --force`);
  }
  if (g.nodes > dataset.train.count) throw new UserError(`--nodes ${g.nodes}: more nodes than the ${dataset.train.count} training samples`);
  return { algorithm, mixing: mixingSchedule(topology), shards: partition(dataset.train.labels, g.nodes, g.partition, seed) };
}

function topologySymmetric(t: Topology): boolean {
  return t.rounds.every((w) => isSymmetric(w));
}

/** The topology's receive weights as per-node edge lists, one set per round of its period. */
export function mixingSchedule(t: Topology): MixingSchedule {
  return { nodes: t.n, rounds: t.rounds.map((w) => w.receive.map((r) => ({ from: Array.from(r.from), weights: Array.from(r.weights) }))) };
}
