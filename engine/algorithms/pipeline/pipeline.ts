/**
 * Pipeline-parallel training: the network cut into D stages of contiguous layers, one role program per
 * stage, each executing its list of actions from a schedule (schedule.ts) on microbatches.
 *
 *   stage k, for each action of its list:
 *     F(m): wait until stage k − 1 has forwarded m; forward k's layers on m with the weights the
 *           strategy picks (and, on the last stage, the loss and its gradient)
 *     B(m): wait until stage k + 1 has back-propagated m; backward k's layers with the weights the
 *           strategy picks; then, asynchronous strategies update k's layers at once
 *   flush strategies update once per batch, after the stage's last action of the batch
 *
 * Weight strategies (--algo):
 *   gpipe, 1f1b   one version; gradients accumulated over the batch's M microbatches, then a step
 *   pipedream     weight stashing: F(m) saves the stage's weights, B(m) uses exactly them; stage k keeps
 *                 D − k versions; every backward updates the live weights
 *   2bw           two versions: updates once per M microbatches (≥ D) from accumulated gradients;
 *                 microbatches in flight keep the version their F used (W_{t+1} = W_t − η∇f(W_{t−1}))
 *   spectrain     F uses Ŵ = W − s_F·lr·v, B uses Ŵ = W − s_B·lr·v, v the momentum (SpecTrain v1:
 *                 s_F = ⌊k/2⌋ + D − k − 1, s_B = ⌊k/2⌋); updates the live weights after every B
 *   pipeoptim     F uses Ŵ = W − lr·s·Δ with Δ the optimizer's own direction (prediction.ts); B and the
 *                 update use the live weights, no stash
 *
 * A microbatch's activations live in one slot, a workspace for the whole network that every stage
 * uses in turn (stage k writes its layers' outputs, stage k + 1 reads them as its input): hand-offs
 * are a counter per stage boundary, not copies. Slot = global microbatch index mod S, S the most
 * microbatches any schedule keeps in flight (GPipe: M; 1F1B: min(D, M)).
 */
import type { KernelExports, Ptr } from "../../kernels/abi.ts";
import { UserError } from "../../errors.ts";
import { epochOrder } from "../../data/order.ts";
import type { Network } from "../../model/network.ts";
import { applyUpdate, planOptimizerState } from "../../optim/optimizer.ts";
import { loadBatch, planWorkerBuffers, type RoleContext, type WorkerBuffers } from "../../runtime/context.ts";
import { WORD } from "../../runtime/control.ts";
import { shardOf } from "../../runtime/split.ts";
import type { RoleProgram } from "../../runtime/sync.ts";
import type { AlgorithmPlan, EpochResult, PlanInput } from "../algorithm.ts";
import { asyncOneFOneB, gpipe, oneFOneB, type Schedule } from "./schedule.ts";
import { pipeoptimSteps, predictionDirection, predictWeights, spectrainSteps } from "./prediction.ts";
import { mark, span } from "../../runtime/trace.ts";

export const PIPELINE_ALGORITHMS = ["gpipe", "1f1b", "pipedream", "2bw", "spectrain", "pipeoptim"] as const;
export type PipelineAlgorithm = (typeof PIPELINE_ALGORITHMS)[number];
export const isPipeline = (algo: string): algo is PipelineAlgorithm => (PIPELINE_ALGORITHMS as readonly string[]).includes(algo);

export interface PipelineOptions {
  stages: number;
  microbatches: number;
}
export const DEFAULT_PIPELINE: PipelineOptions = { stages: 2, microbatches: 4 };

/** Flush strategies run GPipe or 1F1B batch by batch; the others one asynchronous 1F1B window per epoch. */
const flushes = (a: PipelineAlgorithm) => a === "gpipe" || a === "1f1b";
const predicts = (a: PipelineAlgorithm) => a === "spectrain" || a === "pipeoptim";
/**
 * Inconsistency is measured on every SAMPLE-th microbatch: a measurement copies the stage's weights at
 * F and compares at B, which would otherwise cost as much as the strategy's own work.
 */
const SAMPLE = 8;

export interface StageLayout {
  first: number; // layers [first, last]
  last: number;
  /** Float range of the flat parameter vector the stage owns. */
  lo: number;
  hi: number;
  /** Weight copies: pipedream's stash (D − k), 2bw's previous version, spectrain/pipeoptim's predictions. */
  versions: Ptr[];
  /**
   * spectrain, pipeoptim: per in-flight slot, a copy of the weights a sampled F used, to measure the
   * inconsistency at its B. (pipedream and 2bw keep their F weights anyway: no copy needed.)
   */
  forwardWeights: Ptr[];
  grads: Ptr;
}

export interface PipelineLayout {
  algorithm: PipelineAlgorithm;
  stages: StageLayout[];
  microbatches: number;
  slots: WorkerBuffers[];
  params: Ptr;
  state: Ptr[];
  /** i32 per stage: microbatches forwarded / back-propagated so far (the hand-off counters). */
  forwarded: Ptr;
  backpropagated: Ptr;
  /** i32 per stage: updates applied (the stage's weight version). */
  updates: Ptr;
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

export function planPipeline(algorithm: PipelineAlgorithm, input: PlanInput, options: PipelineOptions): AlgorithmPlan {
  const { planner, net } = input;
  const D = options.stages;
  const M = options.microbatches;
  if (M > input.batch) throw new UserError(`--microbatches ${M}: more microbatches than the ${input.batch} samples of a batch`);
  if (input.batch > input.trainCount) throw new UserError(`--batch ${input.batch}: larger than the ${input.trainCount} training samples`);
  const ranges = partitionStages(net, D);
  const params = planner.floats("parameters", "params", net.paramFloats);
  const state = planOptimizerState(planner, net.paramFloats, input.optimizer.kind);
  const slotCount = algorithm === "gpipe" ? M : Math.min(D, M);
  const rows = Math.ceil(input.batch / M);
  const slots = Array.from({ length: slotCount }, (_, s) => planWorkerBuffers(planner, net, `slot${s}`, rows));
  const versionsPerStage = (k: number) =>
    algorithm === "pipedream" ? D - k : algorithm === "2bw" ? 1 : algorithm === "spectrain" ? 2 : algorithm === "pipeoptim" ? 1 : 0;
  // Whole-vector copies (a stage uses only its range): simpler pointer arithmetic for a little memory.
  const stages = ranges.map((r, k): StageLayout => {
    const lo = net.params[r.first]!.offset;
    const end = net.params[r.last]!;
    return {
      ...r,
      lo,
      hi: end.offset + end.floats,
      versions: Array.from({ length: versionsPerStage(k) }, (_, v) => planner.floats("parameters", `stage${k}.version${v}`, net.paramFloats)),
      forwardWeights: predicts(algorithm) ? Array.from({ length: slotCount }, (_, s) => planner.floats("scratch", `stage${k}.slot${s}.forwardWeights`, net.paramFloats)) : [],
      grads: planner.floats("gradients", `stage${k}.grads`, net.paramFloats),
    };
  });
  const layout: PipelineLayout = {
    algorithm,
    stages,
    microbatches: M,
    slots,
    params,
    state,
    forwarded: planner.reserve("control", "pipeline.forwarded", D * 4),
    backpropagated: planner.reserve("control", "pipeline.backpropagated", D * 4),
    updates: planner.reserve("control", "pipeline.updates", D * 4),
  };
  return {
    layout,
    params,
    optimizerState: state,
    // Evaluation buffers, one per stage program.
    perWorker: Array.from({ length: D }, (_, k) => planWorkerBuffers(planner, net, `stage${k}.eval`, Math.min(input.batch, 256))),
    epochRole: "pipeline.epoch",
    trackName: (k) => `stage ${k} (layers ${stages[k]!.first}–${stages[k]!.last})`,
    prepare(memory, epochsDone) {
      // Hand-off counters count global microbatches: start where this process's first epoch begins.
      const first = epochsDone * pipelineBatches(input.trainCount, input.batch) * M;
      for (const word of [layout.forwarded, layout.backpropagated]) new Int32Array(memory.buffer, word, D).fill(first);
    },
    summary: () => ({ stages: stageMemory(net, layout, rows) }),
    counters: (memory) => [...new Int32Array(memory.buffer, layout.updates, D)],
    restoreCounters: (memory, counters) => new Int32Array(memory.buffer, layout.updates, D).set(counters),
  };
}

/** Full batches per epoch (a partial last batch is dropped: every batch splits into M microbatches). */
export function pipelineBatches(trainCount: number, batch: number): number {
  return Math.floor(trainCount / batch);
}

/**
 * What each stage keeps: its layers, the weight versions the strategy holds beyond the live weights
 * (measurement copies excluded), and the activations of the microbatches it can have in flight.
 */
function stageMemory(net: Network, layout: PipelineLayout, rows: number) {
  const inFlight = layout.algorithm === "gpipe" ? layout.microbatches : undefined;
  return layout.stages.map((s, k) => {
    const weightBytes = (s.hi - s.lo) * 4;
    let activationFloats = 0;
    for (let l = s.first; l <= s.last; l++) {
      const layer = net.layers[l]!;
      const out = layer.outShape.reduce((a, b) => a * b, 1);
      activationFloats += layer.aliasesInput ? 0 : out * (2 + (layer.savedFloatsPerSample > 0 ? 1 : 0));
    }
    const slots = inFlight ?? Math.min(layout.stages.length - k, layout.microbatches);
    return {
      stage: k,
      layers: [s.first, s.last],
      weightBytes,
      extraWeightVersions: s.versions.length,
      weightVersionBytes: s.versions.length * weightBytes,
      activationBytes: slots * rows * activationFloats * 4,
    };
  });
}

export function* pipelineStageEpoch(ctx: RoleContext, epoch: number): RoleProgram<EpochResult> {
  const { k, net, setup, worker: stage, sync, control, memory } = ctx;
  const layout = setup.layout as PipelineLayout;
  const started = performance.now();
  const waitedBefore = sync.waitedMs;
  const D = layout.stages.length;
  const M = layout.microbatches;
  const me = layout.stages[stage]!;
  const words = new Int32Array(memory.buffer);
  const forwarded = (s: number) => layout.forwarded + s * 4;
  const backpropagated = (s: number) => layout.backpropagated + s * 4;
  const updates = new Int32Array(memory.buffer, layout.updates, D);
  const batches = pipelineBatches(setup.data.trainCount, setup.batch);
  const order = epochOrder(setup.data.trainCount, setup.seed, epoch);
  const flush = flushes(layout.algorithm);
  // gpipe, 1f1b and 2bw step on gradients accumulated over M microbatches: each is scaled by the batch.
  const accumulates = flush || layout.algorithm === "2bw";
  // Flush strategies: a GPipe or 1F1B window per batch. Asynchronous: one 1F1B window over the epoch.
  const windows: Schedule[] = flush
    ? Array.from({ length: batches }, () => (layout.algorithm === "gpipe" ? gpipe(D, M) : oneFOneB(D, M)))
    : [asyncOneFOneB(D, batches * M)];
  const epochBase = epoch * batches * M; // global microbatch index of this epoch's first microbatch
  const strategy = new WeightStrategy(ctx, layout, me, stage);
  const firstTrainable = net.trainableLayers[0] ?? net.layers.length;
  const totals = { lossSum: 0, samples: 0, updates: 0, inconsistencySum: 0, inconsistencyCount: 0 };

  let windowBase = epochBase;
  for (const window of windows) {
    for (const action of window.actions[stage]!) {
      const g = windowBase + action.microbatch; // global microbatch index
      const slot = layout.slots[g % layout.slots.length]!;
      const local = g - epochBase;
      const batch = Math.floor(local / M);
      const { lo, hi } = shardOf(setup.batch, M, local % M);
      const rows = hi - lo;
      if (action.kind === "F") {
        if (stage > 0) yield* waitAtLeast(words, forwarded(stage - 1), g + 1, sync, `stage ${stage - 1}'s forward of microbatch ${g}`);
        else loadBatch(ctx, slot, "train", order, batch * setup.batch + lo, rows);
        const t = mark(ctx.trace);
        const weights = strategy.forwardWeights(g);
        for (let l = me.first; l <= me.last; l++) net.forwardLayer(k, l, weights, slot.ws, rows);
        net.copyForwardState(k, weights, layout.params, me.first, me.last); // batch norm's running statistics
        if (stage === D - 1) {
          // Flush strategies average over the batch; asynchronous ones step on every microbatch.
          totals.lossSum += net.lossAndGradient(k, slot.ws, rows, 1 / (accumulates ? setup.batch : rows));
          totals.samples += rows;
          control.workerLoss[stage] = totals.lossSum;
          control.add(WORD.samplesDone, rows);
        }
        span(ctx.trace, `F${g - epochBase}`, t);
        sync.wake(forwarded(stage)); // the counter counts microbatches: wake() adds one
      } else {
        if (stage < D - 1) yield* waitAtLeast(words, backpropagated(stage + 1), g + 1, sync, `stage ${stage + 1}'s backward of microbatch ${g}`);
        const t = mark(ctx.trace);
        const weights = strategy.backwardWeights(g);
        const accumulate = accumulates && g % M !== 0; // the first microbatch of a batch overwrites
        for (let l = me.last; l >= Math.max(me.first, firstTrainable); l--) net.backwardLayer(k, l, weights, me.grads, slot.ws, rows, accumulate);
        const distance = strategy.inconsistency(g, weights);
        if (distance !== null) {
          totals.inconsistencySum += distance;
          totals.inconsistencyCount++;
        }
        span(ctx.trace, `B${g - epochBase}`, t);
        sync.wake(backpropagated(stage));
        if (!flush && strategy.updatesAfter(g)) {
          const u = mark(ctx.trace);
          totals.updates += strategy.update(Atomics.add(updates, stage, 1) + 1);
          span(ctx.trace, "update", u);
        }
      }
      yield* sync.point();
    }
    if (flush) totals.updates += strategy.update(Atomics.add(updates, stage, 1) + 1);
    windowBase += window.microbatches;
  }
  return {
    lossSum: totals.lossSum,
    samples: totals.samples,
    inconsistency: totals.inconsistencyCount > 0 ? totals.inconsistencySum / totals.inconsistencyCount : undefined,
    updates: stage === 0 ? totals.updates : 0,
    layerUpdates: totals.updates * (me.last - me.first + 1),
    waitedMs: sync.waitedMs - waitedBefore,
    elapsedMs: performance.now() - started,
  };
}

function* waitAtLeast(words: Int32Array, word: Ptr, target: number, sync: RoleContext["sync"], what: string) {
  for (let seen = Atomics.load(words, word >> 2); seen < target; seen = Atomics.load(words, word >> 2)) {
    yield* sync.waitChange(word, seen, what);
  }
}

/**
 * Which weights a stage's F and B use, and how it updates: the one place the strategies differ.
 * Weight vectors are whole-model sized; only the stage's float range [lo, hi) is read or written.
 */
class WeightStrategy {
  private readonly k: KernelExports;
  private readonly n: number;
  private readonly D: number;
  /** 2bw: the global microbatch index from which the live weights are the ones F used. */
  private liveSince = 0;

  constructor(
    private readonly ctx: RoleContext,
    private readonly layout: PipelineLayout,
    private readonly me: StageLayout,
    private readonly stage: number,
  ) {
    this.k = ctx.k;
    this.n = me.hi - me.lo;
    this.D = layout.stages.length;
  }

  private range(base: Ptr): Ptr {
    return base + this.me.lo * 4;
  }

  private copyStage(to: Ptr, from: Ptr): void {
    this.k.copy(this.range(to), this.range(from), this.n);
  }

  forwardWeights(g: number): Ptr {
    const { layout, me } = this;
    const live = layout.params;
    let used = live;
    switch (layout.algorithm) {
      case "pipedream": {
        used = me.versions[g % me.versions.length]!; // the stash this microbatch's B will use
        this.copyStage(used, live);
        break;
      }
      case "2bw":
        used = g < this.liveSince ? me.versions[0]! : live;
        break;
      case "spectrain":
        used = this.predict(me.versions[0]!, spectrainSteps(this.stage, this.D, "v1", "forward"));
        break;
      case "pipeoptim":
        used = this.predict(me.versions[0]!, pipeoptimSteps(this.stage, this.D));
        break;
    }
    if (me.forwardWeights.length > 0 && g % SAMPLE === 0) this.copyStage(me.forwardWeights[g % me.forwardWeights.length]!, used);
    return used;
  }

  backwardWeights(g: number): Ptr {
    const { layout, me } = this;
    switch (layout.algorithm) {
      case "pipedream":
        return me.versions[g % me.versions.length]!;
      case "2bw":
        return g < this.liveSince ? me.versions[0]! : layout.params;
      case "spectrain":
        return this.predict(me.versions[1]!, spectrainSteps(this.stage, this.D, "v1", "backward"));
      default:
        return layout.params;
    }
  }

  /**
   * ‖weights at F − weights at B‖² on this stage, on sampled microbatches of the asynchronous
   * strategies. pipedream's and 2bw's B uses the very vector its F used: 0 by construction, and
   * measured as such (their F weights are still there, so the comparison costs no copy).
   */
  inconsistency(g: number, backward: Ptr): number | null {
    const { layout, me } = this;
    if (flushes(layout.algorithm) || g % SAMPLE !== 0) return null;
    const forward = predicts(layout.algorithm) ? me.forwardWeights[g % me.forwardWeights.length]! : this.forwardWeightsOf(g);
    return this.k.squared_distance(this.range(forward), this.range(backward), this.n);
  }

  /** pipedream, 2bw: the vector microbatch g's F ran on, still held. */
  private forwardWeightsOf(g: number): Ptr {
    const { layout, me } = this;
    if (layout.algorithm === "pipedream") return me.versions[g % me.versions.length]!;
    return g < this.liveSince ? me.versions[0]! : layout.params;
  }

  /** Asynchronous strategies step after every backward, but 2bw once per M microbatches. */
  updatesAfter(g: number): boolean {
    return this.layout.algorithm !== "2bw" || (g + 1) % this.layout.microbatches === 0;
  }

  /** Apply the stage's accumulated gradient as update number `step`; returns 1. */
  update(step: number): number {
    const { ctx, layout, me } = this;
    if (layout.algorithm === "2bw") {
      // The version in-flight microbatches used becomes the shadow; newer F's see the updated one.
      this.copyStage(me.versions[0]!, layout.params);
      this.liveSince = this.nextForward();
    }
    for (let l = me.first; l <= me.last; l++) {
      const region = ctx.net.params[l]!;
      if (region.floats === 0) continue;
      const at = (base: Ptr) => (base === 0 ? 0 : base + region.offset * 4);
      applyUpdate(this.k, ctx.setup.optimizer, { w: at(layout.params), g: at(me.grads), m: at(layout.state[0] ?? 0), v: at(layout.state[1] ?? 0), n: region.floats }, step);
    }
    return 1;
  }

  /** 2bw: the next microbatch this stage will forward (all earlier ones already did). */
  private nextForward(): number {
    return Atomics.load(new Int32Array(this.ctx.memory.buffer), (this.layout.forwarded + this.stage * 4) >> 2);
  }

  /** Ŵ = W − lr·s·Δ into `into` (stage range); the live weights themselves when there is no Δ yet. */
  private predict(into: Ptr, s: number): Ptr {
    const { ctx, layout, me } = this;
    const view = (base: Ptr) => new Float32Array(ctx.memory.buffer, base + me.lo * 4, this.n);
    const step = Atomics.load(new Int32Array(ctx.memory.buffer, layout.updates, this.D), this.stage);
    const delta = view(into); // written in place: Δ first, then Ŵ over it
    const has = predictionDirection(
      ctx.setup.optimizer,
      { m: layout.state[0] ? view(layout.state[0]) : undefined, v: layout.state[1] ? view(layout.state[1]) : undefined, lastGrad: view(me.grads), step },
      delta,
    );
    if (!has || s === 0) return layout.params;
    predictWeights(view(layout.params), delta, ctx.setup.optimizer.lr, s, delta);
    return into;
  }
}
