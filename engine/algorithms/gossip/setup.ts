/**
 * From a configuration to a gossip run: the topology's mixing matrices, the data partition, and the
 * checks every gossip algorithm shares.
 */
import { partition } from "../../data/order.ts";
import type { Dataset } from "../../data/types.ts";
import { UserError } from "../../errors.ts";
import type { TrainConfig } from "../config.ts";
import type { GossipOptions, MixingSchedule } from "./round.ts";
import { buildTopology, type Topology } from "./topology.ts";

export interface GossipConfig {
  topology: string;
  nodes: number;
  /** iid | sorted | dirichlet:ALPHA */
  partition: string;
  /** Run DecentLaM with momentum on a non-symmetric topology anyway. */
  force: boolean;
  /** localsgd, slowmo: local steps τ between exact averages; SlowMo's slow momentum β and slow learning rate α. */
  localSteps: number;
  slowMomentum: number;
  slowLr: number;
}

export const DEFAULT_GOSSIP: GossipConfig = { topology: "ring", nodes: 8, partition: "iid", force: false, localSteps: 8, slowMomentum: 0.5, slowLr: 1 };

export function gossipOptions(dataset: Dataset, config: TrainConfig): Omit<GossipOptions, "settings"> {
  const g: GossipConfig = { ...DEFAULT_GOSSIP, ...config.gossip };
  const { seed } = config;
  if (g.nodes > dataset.train.count) throw new UserError(`--nodes ${g.nodes}: more nodes than the ${dataset.train.count} training samples`);
  const topology = buildTopology(g.topology, g.nodes, { seed });
  return { mixing: mixingSchedule(topology), shards: partition(dataset.train.labels, g.nodes, g.partition, seed) };
}

/** The topology's receive weights as per-node edge lists, one set per round of its period. */
export function mixingSchedule(t: Topology): MixingSchedule {
  return { nodes: t.n, rounds: t.rounds.map((w) => w.receive.map((r) => ({ from: Array.from(r.from), weights: Array.from(r.weights) }))) };
}
