/**
 * What a training run is asked to do: the configuration `skein train` builds from flags, checkpoints
 * save, and experiments write as data. Family options are partial; `resolved*` fills the defaults.
 */
import type { ExecutorName } from "../runtime/executor.ts";
import type { SimulationConfig } from "../runtime/costs.ts";
import type { SimulatedPlacement } from "../runtime/process-network.ts";
import type { OptimizerConfig } from "../optim/optimizer.ts";
import { DEFAULT_ASYNC, type AsyncOptions } from "./async/options.ts";
import { DEFAULT_GOSSIP, type GossipConfig } from "./gossip/setup.ts";
import { DEFAULT_PIPELINE, type PipelineOptions } from "./pipeline/pipeline.ts";

export interface TrainConfig {
  /** A name in the algorithm registry. */
  algo: string;
  model: string;
  data: string;
  epochs: number;
  /** sync: the global batch of one step; async: each worker's batch; gossip: each node's; pipelines: one pipeline batch. */
  batch: number;
  /** Worker threads (layerwise and pipelines derive it from their own options). */
  workers: number;
  /** threads: real workers; deterministic: one thread, seeded interleaving (bitwise reproducible). */
  executor: ExecutorName;
  seed: number;
  optimizer: OptimizerConfig;
  /** hogwild, lap, lpp, layerwise: replicas, averaging period, threads, queue. */
  async?: Partial<AsyncOptions>;
  /** pmsgd, dsgd, dmsgd, decentlam: nodes, topology and data partition. */
  gossip?: Partial<GossipConfig>;
  /** gpipe, 1f1b, pipedream, 2bw, spectrain, pipeoptim: stages and microbatches per batch. */
  pipeline?: Partial<PipelineOptions>;
  /** --executor simulated: the cost table, machine and network (defaults: shipped table, measured, shm). */
  simulation?: SimulationConfig & SimulatedPlacement;
}

export const asyncOptionsOf = (config: TrainConfig): AsyncOptions => ({ ...DEFAULT_ASYNC, ...config.async });
export const gossipOptionsOf = (config: TrainConfig): GossipConfig => ({ ...DEFAULT_GOSSIP, ...config.gossip });
export const pipelineOptionsOf = (config: TrainConfig): PipelineOptions => ({ ...DEFAULT_PIPELINE, ...config.pipeline });
