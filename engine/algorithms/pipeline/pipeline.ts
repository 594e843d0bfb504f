/**
 * Pipeline-parallel training: the network cut into D stages of contiguous layers, one role program per
 * stage. The stage program is an interpreter: it executes its stage's list of lowered actions (a
 * schedule, annotated by a weight strategy, strategies.ts, and lowered to buffers, lower.ts) and
 * decides nothing itself.
 *
 *   F(m)  wait until stage k − 1 has forwarded m (stage 0: load m's samples); forward k's layers on
 *         the weights the action names (live, a stashed version, or a prediction); on the last
 *         stage, the loss and its gradient
 *   B(m)  wait until stage k + 1 has back-propagated m; backward k's layers on the weights the action
 *         names, adding to (or starting) the stage's gradient
 *   I(m)  the input-gradient half of that backward (what stage k − 1 waits for), keeping in m's slot
 *         what the weight gradient needs
 *   W(m)  the weight-gradient half, later, from m's saved activations: added to (or starting) the
 *         stage's gradient
 *   then, where the action says: copy the live weights into a stash buffer, apply the update
 *
 * What flows through the pipeline (one epoch):
 *   gpipe, 1f1b, --schedule FILE  one window per batch, the batch split into M microbatches
 *   pipedream, spectrain, pipeoptim  one asynchronous 1F1B window over the epoch's stream of units:
 *                 microbatches (--pipeline-unit microbatch: one update per B/M samples) or whole
 *                 batches (--pipeline-unit batch: one update per B samples, as the PipeDream-based
 *                 runtimes of SpecTrain and PipeOptim run, and as GPipe, 1F1B and 2BW update)
 *   2bw           one asynchronous 1F1B window over the epoch's microbatches, an update per batch
 *
 * A microbatch's activations live in one slot, a workspace for the whole network that every stage
 * uses in turn (stage k writes its layers' outputs, stage k + 1 reads them as its input): hand-offs
 * are a flag per stage and microbatch, not copies. The lowering hands out slots; the runtime checks
 * at every action that its slot still belongs to its microbatch, and frees a slot when every stage
 * has given its microbatch up.
 */
import type { Ptr } from "../../kernels/abi.ts";
import { UserError } from "../../errors.ts";
import type { Scratch } from "../../model/layers.ts";
import type { Network } from "../../model/network.ts";
import { planOptimizerState, type OptimizerConfig } from "../../optim/optimizer.ts";
import { planWorkerBuffers, type WorkerBuffers } from "../../runtime/context.ts";
import { shardOf } from "../../runtime/split.ts";
import type { AlgorithmPlan, PlanInput } from "../algorithm.ts";
import { asyncOneFOneB, gpipe, oneFOneB, peakInFlight, writesGradient, type Schedule } from "./schedule.ts";
import { validateSchedule } from "./validate.ts";
import { lower, type Lowered } from "./lower.ts";
import { predictionReadsGradient } from "./prediction.ts";
import { annotate, flushes, type PipelineAlgorithm } from "./strategies.ts";

export { PIPELINE_ALGORITHMS, isPipeline, type PipelineAlgorithm } from "./strategies.ts";

export const PIPELINE_UNITS = ["microbatch", "batch"] as const;
export type PipelineUnit = (typeof PIPELINE_UNITS)[number];

export interface PipelineOptions {
  stages: number;
  microbatches: number;
  /**
   * pipedream, spectrain, pipeoptim: what one update is computed from — a microbatch of B/M samples
   * (the stream is the epoch's microbatches), or a whole batch of B samples (the stream is its
   * batches; every strategy then makes one update per B samples). Default microbatch.
   */
  unit?: PipelineUnit;
  /** A schedule to run instead of the algorithm's own, one window per batch (--schedule FILE). */
  schedule?: Schedule;
  /** spectrain, pipeoptim: false turns every prediction off (s = 0), the same run without prediction. */
  prediction?: boolean;
  /** Measure ‖W_F − W_B‖² on every n-th unit of the asynchronous strategies (default 8; tests use 1). */
  measureEvery?: number;
}
export const DEFAULT_PIPELINE: PipelineOptions = { stages: 2, microbatches: 4 };

export interface StageLayout {
  /**
   * Layers [first, last] and the float range [lo, hi) of the flat parameter vector they own. With
   * virtual stages (interleaved schedules) the span from the first chunk's first layer to the last
   * chunk's last: other workers' chunks lie between, so only flushed strategies, which never copy a
   * stage's range, run them; `chunks` are the worker's own layers.
   */
  first: number;
  last: number;
  lo: number;
  hi: number;
  /** The stage's chunks of layers, by chunk: chunk c is virtual stage c·D + k. One without virtual stages. */
  chunks: { first: number; last: number }[];
  /** Stashed weight versions (weight stashing, 2BW's previous version). */
  stash: Ptr[];
  /** The predicted weights Ŵ (spectrain, pipeoptim), 0 when the stage never predicts. */
  prediction: Ptr;
  /** Asynchronous strategies: per activation slot, a copy of the weights a measured F read, compared at its B. */
  forwardCopy: Ptr[];
  grads: Ptr;
  /**
   * With split backwards, the stage's own scratch for every action: a later stage's W on a microbatch
   * may run while this stage's I on it does, so the slot's scratch cannot serve both.
   */
  scratch?: Scratch;
}

/** How an epoch is cut into windows of the schedule. */
export interface EpochShape {
  /** Windows per epoch, each a run of the (lowered) schedule. */
  windows: number;
  /** Microbatches (units) per window: the schedule's M. */
  perWindow: number;
  /** Units per batch: each unit is shard `u mod unitsPerBatch` of batch ⌊u / unitsPerBatch⌋. */
  unitsPerBatch: number;
}

export interface PipelineLayout {
  algorithm: PipelineAlgorithm;
  options: PipelineOptions;
  shape: EpochShape;
  stages: StageLayout[];
  slots: WorkerBuffers[];
  params: Ptr;
  state: Ptr[];
  /** i32 per stage and epoch unit: bumped when the stage has forwarded / back-propagated the unit. */
  forwardDone: Ptr;
  gradientDone: Ptr;
  /** i32 per activation slot: 1 + the epoch unit holding it, 0 when free. */
  slotOwner: Ptr;
  /** i32 per activation slot: how many units stage 0 has handed it so far. */
  slotClaims: Ptr;
  /**
   * i32 per stage and activation slot (stage-major): how many units the stage has given up from the
   * slot. The slot is free when every stage's count has reached the slot's claims. Counts, not a
   * shared "users left" word, so that a stage in another process can report its release by a relayed
   * wake alone.
   */
  slotReleased: Ptr;
  /** i32 per stage: updates applied (the stage's weight version, Adam's t). */
  updates: Ptr;
  measureEvery: number;
}

/** Full batches per epoch (a partial last batch is dropped: every batch splits into M microbatches). */
export function pipelineBatches(trainCount: number, batch: number): number {
  return Math.floor(trainCount / batch);
}

export function epochShape(algorithm: PipelineAlgorithm, o: PipelineOptions, batches: number): EpochShape {
  if (o.schedule) return { windows: batches, perWindow: o.schedule.microbatches, unitsPerBatch: o.schedule.microbatches };
  if (flushes(algorithm)) return { windows: batches, perWindow: o.microbatches, unitsPerBatch: o.microbatches };
  const unitsPerBatch = algorithm !== "2bw" && o.unit === "batch" ? 1 : o.microbatches;
  return { windows: 1, perWindow: batches * unitsPerBatch, unitsPerBatch };
}

/**
 * The annotated, validated, lowered schedule one window runs. A user's schedule that the validator
 * rejects is refused with its messages.
 */
export function windowProgram(algorithm: PipelineAlgorithm, o: PipelineOptions, shape: EpochShape, batch: number): Lowered {
  const D = o.stages;
  let raw: Schedule;
  if (o.schedule) {
    raw = o.schedule;
    if (raw.stages !== D) throw new UserError(`--schedule '${raw.name}' has ${raw.stages} stages but the run has --stages ${D}`);
    const errors = validateSchedule(raw);
    if (errors.length > 0) throw new UserError(`--schedule '${raw.name}' is not a valid schedule: ${errors.slice(0, 3).join("; ")}${errors.length > 3 ? ` (and ${errors.length - 3} more)` : ""}`);
  } else if (flushes(algorithm)) raw = algorithm === "gpipe" ? gpipe(D, shape.perWindow) : oneFOneB(D, shape.perWindow);
  else raw = asyncOneFOneB(D, shape.perWindow);
  const annotated = annotate(algorithm, raw, shape.unitsPerBatch, o.prediction !== false);
  const errors = validateSchedule(annotated);
  if (errors.length > 0) throw new UserError(`--algo ${algorithm} on schedule '${raw.name}': ${errors.slice(0, 3).join("; ")}`);
  const rows = (m: number) => {
    const { lo, hi } = shardOf(batch, shape.unitsPerBatch, m % shape.unitsPerBatch);
    return hi - lo;
  };
  return lower(annotated, rows);
}

/** Refuses a prediction that would read a gradient the stage has half-accumulated since its last update. */
function checkPredictionInputs(l: Lowered, optimizer: OptimizerConfig): void {
  if (!predictionReadsGradient(optimizer)) return;
  l.steps.forEach((list, k) => {
    let midAccumulation = false;
    for (const step of list) {
      if (step.weights.from === "predicted" && step.weights.steps > 0 && midAccumulation) {
        throw new UserError(`--optimizer ${optimizer.kind}: its prediction reads the last update's gradient, but stage ${k} predicts for ${step.kind}${step.microbatch} after accumulating part of the next one; use momentum or adam, or a schedule that updates after every backward`);
      }
      if (writesGradient(step)) midAccumulation = true;
      if (step.update) midAccumulation = false;
    }
  });
}
/**
 * Contiguous stages that minimise the most expensive stage (forward multiply-adds per sample; the
 * backward costs about twice as much everywhere, so the balance is the same): the classic linear
 * partition, by dynamic programming over where each stage ends. Layers without parameters go with the
 * layer before them. D may not exceed the number of layers with parameters.
 */
export function partitionStages(net: Network, D: number): { first: number; last: number }[] {
  const trainable = net.trainableLayers;
  if (D > trainable.length) throw new UserError(`--stages ${D}: a stage needs a layer with parameters and ${net.specText} has ${trainable.length}`);
  const cost = trainable.map((l) => Math.max(1, macsPerSample(net, l)));
  const L = cost.length;
  const prefix = [0];
  for (const c of cost) prefix.push(prefix[prefix.length - 1]! + c);
  // best[d][j]: the smallest possible max-stage cost of the first j trainable layers in d stages.
  const best = Array.from({ length: D + 1 }, () => new Array<number>(L + 1).fill(Infinity));
  const cut = Array.from({ length: D + 1 }, () => new Array<number>(L + 1).fill(0));
  best[0]![0] = 0;
  for (let d = 1; d <= D; d++) {
    for (let j = d; j <= L; j++) {
      for (let i = d - 1; i < j; i++) {
        const worst = Math.max(best[d - 1]![i]!, prefix[j]! - prefix[i]!);
        if (worst < best[d]![j]!) {
          best[d]![j] = worst;
          cut[d]![j] = i;
        }
      }
    }
  }
  const starts: number[] = [];
  for (let d = D, j = L; d > 0; j = cut[d]![j]!, d--) starts.unshift(cut[d]![j]!);
  // Stage d starts at its first trainable layer (stage 0 at layer 0) and ends before the next stage's.
  return starts.map((t, d) => ({
    first: d === 0 ? 0 : trainable[t]!,
    last: d === D - 1 ? net.layers.length - 1 : trainable[starts[d + 1]!]! - 1,
  }));
}

function macsPerSample(net: Network, i: number): number {
  const layer = net.layers[i]!;
  if (layer.macsPerSample) return layer.macsPerSample(); // composite layers (residual blocks) know their cost
  const weights = net.params[i]!.tensors[0]?.floats ?? 0;
  const spatial = layer.kind === "conv2d" ? layer.outShape[1]! * layer.outShape[2]! : 1;
  return weights * spatial;
}

/** The plan, plus the annotated schedule one window runs (for reports and tests). */
export type PipelinePlan = AlgorithmPlan<PipelineLayout> & { schedule: Schedule; lowered: Lowered };

export function planPipeline(algorithm: PipelineAlgorithm, input: PlanInput, options: PipelineOptions): PipelinePlan {
  const { planner, net } = input;
  const D = options.stages;
  const batches = pipelineBatches(input.trainCount, input.batch);
  const shape = epochShape(algorithm, options, batches);
  if (shape.unitsPerBatch > input.batch) throw new UserError(`--microbatches ${shape.unitsPerBatch}: more microbatches than the ${input.batch} samples of a batch`);
  if (input.batch > input.trainCount) throw new UserError(`--batch ${input.batch}: larger than the ${input.trainCount} training samples`);
  const program = windowProgram(algorithm, options, shape, input.batch);
  checkPredictionInputs(program, input.optimizer);
  const v = program.schedule.virtualStages ?? 1;
  const pieces = partitionStages(net, D * v); // by virtual stage
  const ranges = Array.from({ length: D }, (_, k) => {
    const chunks = Array.from({ length: v }, (_, c) => pieces[c * D + k]!);
    return { first: chunks[0]!.first, last: chunks[v - 1]!.last, chunks };
  });
  const params = planner.floats("parameters", "params", net.paramFloats);
  const state = planOptimizerState(planner, net.paramFloats, input.optimizer.kind);
  const rows = Math.ceil(input.batch / shape.unitsPerBatch);
  // A split backward keeps what its W needs in the microbatch's slot until the W.
  const splitBackward = program.schedule.actions.some((list) => list.some((a) => a.kind === "I"));
  const slots = Array.from({ length: program.slots }, (_, s): WorkerBuffers => ({
    ws: net.planWorkspace(planner, `slot${s}`, rows, { splitBackward }),
    indices: planner.reserve("activations", `slot${s}.indices`, rows * 4),
  }));
  const measures = !flushes(algorithm) && !options.schedule?.flush;
  // Whole-vector copies (a stage uses only its range): simpler pointer arithmetic for a little memory.
  const vector = (kind: "parameters" | "gradients" | "scratch", name: string) => planner.floats(kind, name, net.paramFloats);
  const stages = ranges.map((r, k): StageLayout => {
    const lo = net.params[r.first]!.offset;
    const end = net.params[r.last]!;
    const predicts = program.steps[k]!.some((s) => s.weights.from === "predicted" && s.weights.steps > 0);
    return {
      ...r,
      lo,
      hi: end.offset + end.floats,
      stash: Array.from({ length: program.stashBuffers[k]! }, (_, v) => vector("parameters", `stage${k}.stash${v}`)),
      prediction: predicts ? vector("parameters", `stage${k}.prediction`) : 0,
      forwardCopy: measures ? Array.from({ length: program.slots }, (_, s) => vector("scratch", `stage${k}.slot${s}.forwardWeights`)) : [],
      grads: vector("gradients", `stage${k}.grads`),
      ...(splitBackward ? { scratch: net.planScratch(planner, `stage${k}`, rows) } : {}),
    };
  });
  const units = shape.windows * shape.perWindow;
  const layout: PipelineLayout = {
    algorithm,
    options,
    shape,
    stages,
    slots,
    params,
    state,
    forwardDone: planner.reserve("control", "pipeline.forwardDone", D * v * units * 4),
    gradientDone: planner.reserve("control", "pipeline.gradientDone", D * v * units * 4),
    slotOwner: planner.reserve("control", "pipeline.slotOwner", Math.max(1, program.slots) * 4),
    slotClaims: planner.reserve("control", "pipeline.slotClaims", Math.max(1, program.slots) * 4),
    slotReleased: planner.reserve("control", "pipeline.slotReleased", D * Math.max(1, program.slots) * 4),
    updates: planner.reserve("control", "pipeline.updates", D * 4),
    measureEvery: options.measureEvery ?? 8,
  };
  return {
    layout,
    params,
    optimizerState: state,
    // Evaluation buffers, one per stage program.
    perWorker: Array.from({ length: D }, (_, k) => planWorkerBuffers(planner, net, `stage${k}.eval`, Math.min(input.batch, 256))),
    trackName: (k) => `stage ${k} (layers ${stages[k]!.chunks.map((c) => `${c.first}–${c.last}`).join(", ")})`,
    prepare(memory, epochsDone) {
      // Done flags count epochs: in epoch e a stage waits for its peer's flag to reach e + 1.
      for (const word of [layout.forwardDone, layout.gradientDone]) new Int32Array(memory.buffer, word, D * v * units).fill(epochsDone);
      for (const word of [layout.slotOwner, layout.slotClaims]) new Int32Array(memory.buffer, word, Math.max(1, program.slots)).fill(0);
      new Int32Array(memory.buffer, layout.slotReleased, D * Math.max(1, program.slots)).fill(0);
    },
    summary: () => ({ stages: stageMemory(net, layout, program, rows, splitBackward) }),
    // SpecTrain and PipeOptim predict from the last update's gradient (sgd, nesterov, rmsprop): a resume needs it.
    checkpointVectors: () => stages.flatMap((s, k) => (s.prediction !== 0 ? [{ name: `stage${k}.lastGrad`, ptr: s.grads + s.lo * 4, floats: s.hi - s.lo }] : [])),
    counters: (memory) => [...new Int32Array(memory.buffer, layout.updates, D)],
    restoreCounters: (memory, counters) => new Int32Array(memory.buffer, layout.updates, D).set(counters),
    schedule: program.schedule,
    lowered: program,
  };
}

/**
 * What each stage keeps: its layers, the weight copies the strategy holds beyond the live weights
 * (stashed versions and the prediction; measurement copies excluded), and the activations of the
 * microbatches it has in flight at its peak (with a split backward, what each I keeps for its W).
 */
function stageMemory(net: Network, layout: PipelineLayout, program: Lowered, rows: number, splitBackward: boolean) {
  const peaks = peakInFlight(program.schedule);
  return layout.stages.map((s, k) => {
    const layers = s.chunks.flatMap((c) => Array.from({ length: c.last - c.first + 1 }, (_, i) => c.first + i));
    const weightBytes = layers.reduce((n, l) => n + net.params[l]!.floats * 4, 0);
    let activationFloats = 0;
    for (const l of layers) {
      const layer = net.layers[l]!;
      const out = layer.outShape.reduce((a, b) => a * b, 1);
      activationFloats += layer.aliasesInput ? 0 : out * 2 + layer.savedFloatsPerSample;
      if (splitBackward) activationFloats += layer.heldFloatsPerSample ?? 0;
    }
    const copies = s.stash.length + (s.prediction ? 1 : 0);
    return {
      stage: k,
      layers: [s.first, s.last] as [number, number],
      weightBytes,
      extraWeightVersions: copies,
      weightVersionBytes: copies * weightBytes,
      activationBytes: peaks[k]! * rows * activationFloats * 4,
    };
  });
}
