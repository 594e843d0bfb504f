/**
 * Weight strategies as annotation passes over a schedule: each takes a schedule (the order of F, B, I
 * and W on every stage) and says, per action, which weights it reads and where each stage updates.
 * The runtime (pipeline.ts) only executes what they write; lower.ts turns the annotations into
 * buffers (activation slots, stashed versions).
 *
 *   gpipe, 1f1b   flushed schedules: one version per batch, one update after each stage's last action
 *   pipedream     weight stashing (Narayanan et al., SOSP 2019): an update after every backward; F reads
 *                 the live weights, and its B, I and W exactly the version F read
 *   2bw           PipeDream-2BW (Narayanan et al., ICML 2021): gradients of m microbatches accumulate
 *                 into one update; microbatch j reads version max(⌊j/m⌋ − 1, 0) for F and B on every
 *                 stage, so W(t+1) = W(t) − η·∇f(W(t−1)): a delay of exactly one version everywhere
 *   spectrain     (Chen et al., arXiv 1809.02839, v1) F reads Ŵ predicted ⌊k/2⌋ + D − k − 1 updates
 *                 ahead, B ⌊k/2⌋ ahead; updates after every backward
 *   pipeoptim     (Guan et al., arXiv 2312.00839) F reads Ŵ predicted s updates ahead, s = the updates
 *                 the stage applies between that F and its B in this very schedule (D − k − 1 in
 *                 asynchronous 1F1B's steady state); B and the update read the live weights
 */
import { UserError } from "../../errors.ts";
import { spectrainSteps } from "./prediction.ts";
import { updatePoints, writesGradient, type Action, type Schedule } from "./schedule.ts";

export const PIPELINE_ALGORITHMS = ["gpipe", "1f1b", "pipedream", "2bw", "spectrain", "pipeoptim"] as const;
export type PipelineAlgorithm = (typeof PIPELINE_ALGORITHMS)[number];
export const isPipeline = (algo: string): algo is PipelineAlgorithm => (PIPELINE_ALGORITHMS as readonly string[]).includes(algo);

/** gpipe and 1f1b run flushed schedules; the others stream microbatches (or batches) asynchronously. */
export const flushes = (a: PipelineAlgorithm): boolean => a === "gpipe" || a === "1f1b";

/**
 * Returns the schedule with every action annotated for `algorithm` (a new object; the input is not
 * changed). `groupSize`: 2bw's m, the microbatches per update. `predict` false: spectrain and
 * pipeoptim with every prediction turned off (s = 0), the same run without prediction.
 */
export function annotate(algorithm: PipelineAlgorithm, s: Schedule, groupSize: number, predict = true): Schedule {
  if ((s.virtualStages ?? 1) > 1 && !flushes(algorithm)) throw new UserError(`--algo ${algorithm}: schedule '${s.name}' has virtual stages (several chunks per worker), which run flushed, one update per batch: use --algo 1f1b or gpipe`);
  switch (algorithm) {
    case "gpipe":
    case "1f1b":
      if (!s.flush) throw new UserError(`--algo ${algorithm} runs flushed schedules (one update per batch); schedule '${s.name}' is asynchronous: use --algo pipedream, 2bw, spectrain or pipeoptim`);
      return withActions(s, (k, list) => list.map((a) => ({ ...a, version: 0, weights: "version" as const, update: undefined })), false);
    case "pipedream":
      return stashed(s);
    case "2bw":
      return twoBW(s, groupSize);
    case "spectrain": {
      const D = s.stages;
      return withActions(stashed(s), (k, list) =>
        list.map((a) =>
          a.kind === "W" ? a : { ...a, weights: "predicted" as const, predictSteps: predict ? spectrainSteps(k, D, a.kind === "F" ? "forward" : "backward") : 0 },
        ),
      );
    }
    case "pipeoptim":
      return withActions(stashed(s), (k, list) => {
        const ahead = updatesBetweenForwardAndBackward(s, k);
        return list.map((a) => (a.kind === "F" ? { ...a, weights: "predicted" as const, predictSteps: predict ? (ahead.get(a.microbatch) ?? 0) : 0 } : a.kind === "W" ? a : { ...a, weights: "live" as const }));
      });
  }
}

function withActions(s: Schedule, f: (k: number, list: Action[]) => Action[], keepUpdates = true): Schedule {
  const actions = s.actions.map((list, k) => f(k, list));
  if (keepUpdates) {
    // Make the update points explicit so a later pass (or the runtime) cannot read them differently.
    s.actions.forEach((_, k) => {
      const points = updatePoints(s, k);
      actions[k] = actions[k]!.map((a, p) => ({ ...a, update: points[p]! }));
    });
  }
  return { ...s, actions };
}

/** PipeDream: an F reads the weights after all updates so far; its B, I and W read that same version. */
function stashed(s: Schedule): Schedule {
  return withActions(s, (k, list) => {
    const points = updatePoints(s, k);
    let updates = 0;
    const versionOf = new Map<number, number>();
    return list.map((a, p) => {
      if (a.kind === "F") versionOf.set(a.microbatch, updates);
      const out = { ...a, version: versionOf.get(a.microbatch) ?? updates, weights: "version" as const, update: points[p]! };
      if (points[p]) updates++;
      return out;
    });
  }, false);
}

/** Per microbatch, the updates stage k applies after its F and before its B (or I): how far F must look ahead. */
export function updatesBetweenForwardAndBackward(s: Schedule, k: number): Map<number, number> {
  const points = updatePoints(s, k);
  const list = s.actions[k]!;
  const out = new Map<number, number>();
  const atF = new Map<number, number>();
  let updates = 0;
  list.forEach((a, p) => {
    if (a.kind === "F") atF.set(a.microbatch, updates);
    else if (a.kind === "B" || a.kind === "I") out.set(a.microbatch, updates - (atF.get(a.microbatch) ?? updates));
    if (points[p]) updates++;
  });
  return out;
}

/**
 * PipeDream-2BW: microbatch j belongs to batch t = ⌊j/m⌋ and reads version max(t − 1, 0) on every
 * stage, for its F and its backward; each stage updates once per batch, after the batch's last
 * gradient. Update t (version t → t+1) then applies the gradients of batch t, computed on version
 * t − 1: W(t+1) = W(t) − η·∇f(W(t−1)). Version t − 1 must still exist when batch t's first F runs:
 * with m ≥ D, asynchronous 1F1B's stage k forwards microbatch j only after the backward of j − (D−k),
 * so batch t − 1 is complete (version t exists) before batch t + 1 starts, and two versions suffice.
 */
function twoBW(s: Schedule, m: number): Schedule {
  const D = s.stages;
  if (!Number.isInteger(m) || m < D) throw new UserError(`--algo 2bw: each update accumulates --microbatches ${m} microbatches, but PipeDream-2BW needs at least as many as --stages ${D} (so a version is one batch old, never more)`);
  const batchOf = (j: number) => Math.floor(j / m);
  const actions = s.actions.map((list, k) => {
    // The update of batch t comes after its last gradient on this stage; a later batch's gradient
    // before it would be mixed into it.
    const lastOfBatch = new Map<number, number>();
    list.forEach((a, p) => {
      if (writesGradient(a)) lastOfBatch.set(batchOf(a.microbatch), p);
    });
    let open = 0; // the batch whose gradients are accumulating
    return list.map((a, p) => {
      const t = batchOf(a.microbatch);
      if (writesGradient(a)) {
        if (t !== open) throw new UserError(`--algo 2bw: stage ${k} writes a gradient of batch ${t} (microbatch ${a.microbatch}) while batch ${open}'s are still accumulating; schedule '${s.name}' must finish each batch's backwards before the next's`);
        if (lastOfBatch.get(t) === p) open++;
      }
      return { ...a, version: Math.max(t - 1, 0), weights: "version" as const, update: writesGradient(a) && lastOfBatch.get(t) === p };
    });
  });
  return { ...s, name: `${s.name}+2bw`, flush: false, actions };
}
