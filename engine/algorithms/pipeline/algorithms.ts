/**
 * The pipeline strategies as registry entries: one stage program per stage (pipeline.ts), the
 * strategy choosing the schedule and which weights each action reads.
 */
import type { Algorithm } from "../algorithm.ts";
import { pipelineOptionsOf } from "../config.ts";
import { pipelineBatches, planPipeline, type PipelineAlgorithm, type PipelineLayout } from "./pipeline.ts";
import { pipelineStageEpoch } from "./stage.ts";

/**
 * Strategies that update once per batch (gpipe and 1f1b after their flush, 2bw from gradients
 * accumulated over the batch) and those that update after every microbatch's backward (unless
 * --pipeline-unit batch streams whole batches through them).
 */
type UpdatesPer = "batch" | "microbatch";

function pipelineAlgorithm(name: PipelineAlgorithm, updatesPer: UpdatesPer, about: string, paper: string): Algorithm<PipelineLayout> {
  return {
    name,
    family: "pipeline",
    about,
    paper,
    flags: ["stages", "microbatches", "schedule", ...(updatesPer === "microbatch" ? ["pipeline-unit"] : [])],
    programs: (config) => pipelineOptionsOf(config).stages,
    programsFrom: "one worker per stage (--stages)",
    // Full batches of --batch samples (a partial last batch is dropped), each one or M updates.
    stepsPerEpoch(config, trainCount) {
      const o = pipelineOptionsOf(config);
      const perBatch = updatesPer === "microbatch" && (o.unit ?? "microbatch") === "microbatch" ? o.microbatches : 1;
      return pipelineBatches(trainCount, config.batch) * perBatch;
    },
    plan: (input) => planPipeline(name, input, pipelineOptionsOf(input.config)),
    epoch: pipelineStageEpoch,
  };
}

export const gpipe = pipelineAlgorithm("gpipe", "batch", "pipeline, all forwards then all backwards, one update per batch", "Huang et al.: GPipe (NeurIPS 2019)");
export const oneFOneB = pipelineAlgorithm("1f1b", "batch", "pipeline, one forward one backward with a flush per batch", "Narayanan et al.: PipeDream-Flush (ICML 2021); Fan et al.: DAPPLE (PPoPP 2021)");
export const pipedream = pipelineAlgorithm("pipedream", "microbatch", "asynchronous 1F1B with weight stashing, an update per microbatch", "Narayanan et al.: PipeDream (SOSP 2019)");
export const twoBW = pipelineAlgorithm("2bw", "batch", "asynchronous 1F1B, double-buffered weights, delay one version", "Narayanan et al.: PipeDream-2BW (ICML 2021)");
export const spectrain = pipelineAlgorithm("spectrain", "microbatch", "asynchronous 1F1B with weights predicted from the momentum", "Chen, Yang, Cheng: SpecTrain (arXiv 1809.02839)");
export const pipeoptim = pipelineAlgorithm("pipeoptim", "microbatch", "asynchronous 1F1B with weights predicted by the optimizer's own update", "Guan et al.: PipeOptim (arXiv 2312.00839)");
