/**
 * The stage program: one per pipeline stage, interpreting its list of lowered steps (F, B, I, W) from
 * the annotated schedule, window after window. It takes everything from the schedule: which slot a
 * microbatch's activations use, which weights an action reads (live, a stashed version, a prediction),
 * when the stage updates. Hand-offs between stages are per-microbatch done flags in shared memory.
 */
import type { KernelExports, Ptr } from "../../kernels/abi.ts";
import { epochOrderOf } from "../../runtime/epoch-order.ts";
import { applyUpdate, updateRegion, type UpdateRegion } from "../../optim/optimizer.ts";
import { loadBatch, type RoleContext } from "../../runtime/context.ts";
import { shardOf } from "../../runtime/split.ts";
import type { Blocked, RoleProgram } from "../../runtime/sync.ts";
import type { EpochResult } from "../algorithm.ts";
import { type Lowered, type Step, type Weights } from "./lower.ts";
import { predictWeights } from "./prediction.ts";
import { mark, span } from "../../runtime/trace.ts";
import { windowProgram, type PipelineLayout, type StageLayout } from "./pipeline.ts";

/** The lowered window, computed once per worker and shape (it is pure: every stage gets the same). */
const programs = new Map<string, Lowered>();
function programOf(layout: PipelineLayout, batch: number): Lowered {
  const key = JSON.stringify([layout.algorithm, layout.options, layout.shape, batch]);
  let p = programs.get(key);
  if (!p) {
    p = windowProgram(layout.algorithm, layout.options, layout.shape, batch);
    if (programs.size > 16) programs.clear();
    programs.set(key, p);
  }
  return p;
}

export function* pipelineStageEpoch(ctx: RoleContext<PipelineLayout>, epoch: number): RoleProgram<EpochResult> {
  const { k, net, setup, worker: stage, sync, control, memory } = ctx;
  const layout = setup.layout;
  const started = performance.now();
  const waitedBefore = sync.waitedMs;
  const D = layout.stages.length;
  const S = D * (layout.stages[0]!.chunks.length); // virtual stages (= D unless workers hold several chunks)
  const { windows, perWindow, unitsPerBatch } = layout.shape;
  const units = windows * perWindow;
  const me = layout.stages[stage]!;
  const words = new Int32Array(memory.buffer);
  const forwardDone = (s: number, u: number) => layout.forwardDone + (s * units + u) * 4;
  const gradientDone = (s: number, u: number) => layout.gradientDone + (s * units + u) * 4;
  const order = epochOrderOf(ctx, epoch);
  const steps = programOf(layout, setup.batch).steps[stage]!;
  const runtime = new StageRuntime(ctx, layout, me, stage);
  const firstTrainable = net.trainableLayers[0] ?? net.layers.length;
  const totals = { lossSum: 0, samples: 0, updates: 0, inconsistencySum: 0, inconsistencyCount: 0 };
  const measured = (u: number) => me.forwardCopy.length > 0 && u % layout.measureEvery === 0;
  // Per chunk, bytes per sample handed to the next stage (activations) and back to the previous one (their gradient).
  const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 4);
  const sendsForward = me.chunks.map((c) => size(net.layers[c.last]!.outShape));
  const sendsBack = me.chunks.map((c) => size(net.layers[c.first]!.inShape));

  for (let w = 0; w < windows; w++) {
    for (const step of steps) {
      const u = w * perWindow + step.microbatch; // the unit's index in the epoch
      const buffers = layout.slots[step.slot]!;
      const slot = me.scratch ? { ...buffers, ws: { ...buffers.ws, scratch: me.scratch } } : buffers;
      const vs = step.stage; // the virtual stage: this stage's chunk ⌊vs / D⌋
      const c = Math.floor(vs / D);
      const { first, last } = me.chunks[c]!;
      const { lo, hi } = shardOf(setup.batch, unitsPerBatch, u % unitsPerBatch);
      const rows = hi - lo;
      let t = mark(ctx.trace); // restarted after every wait: a span is the action's own work, waits show as gaps
      switch (step.kind) {
        case "F": {
          if (vs > 0) {
            yield* waitAtLeast(words, forwardDone(vs - 1, u), epoch + 1, sync, `stage ${vs - 1}'s forward of unit ${u}`);
            t = mark(ctx.trace);
          } else {
            yield* runtime.claimSlot(step.slot, u);
            t = mark(ctx.trace);
            loadBatch(ctx, slot, "train", order, Math.floor(u / unitsPerBatch) * setup.batch + lo, rows);
          }
          runtime.checkSlot(step.slot, u, step);
          const weights = runtime.weights(step.weights);
          if (measured(u)) runtime.copyStage(me.forwardCopy[step.slot]!, weights);
          for (let l = first; l <= last; l++) net.forwardLayer(k, l, weights, slot.ws, rows);
          net.copyForwardState(k, weights, layout.params, first, last); // batch norm's running statistics belong to the live weights
          if (vs === S - 1) {
            totals.lossSum += net.lossAndGradient(k, slot.ws, rows, step.lossScale);
            totals.samples += rows;
            control.report(stage, totals.lossSum, rows);
          }
          if (vs < S - 1) sync.send(rows * sendsForward[c]!);
          sync.wake(forwardDone(vs, u));
          break;
        }
        case "B":
        case "I": {
          if (vs < S - 1) {
            yield* waitAtLeast(words, gradientDone(vs + 1, u), epoch + 1, sync, `stage ${vs + 1}'s backward of unit ${u}`);
            t = mark(ctx.trace);
          }
          runtime.checkSlot(step.slot, u, step);
          const weights = runtime.weights(step.weights);
          for (let l = last; l >= Math.max(first, firstTrainable); l--) {
            // A full B adds to the stage's gradient; an I computes only the input gradient, and its W the rest.
            if (step.kind === "B") net.backwardLayer(k, l, weights, me.grads, slot.ws, rows, step.accumulate);
            else net.backwardInputLayer(k, l, weights, slot.ws, rows);
          }
          if (measured(u)) {
            totals.inconsistencySum += runtime.distance(me.forwardCopy[step.slot]!, weights);
            totals.inconsistencyCount++;
          }
          if (vs > 0) sync.send(rows * sendsBack[c]!);
          // Give the slot up before the previous stage hears of this backward: what the lowering counts on.
          if (step.releasesSlot) runtime.releaseSlot(step.slot);
          sync.wake(gradientDone(vs, u));
          break;
        }
        case "W":
          // The weight gradient from the activations F saved and what I kept; reads no weights.
          runtime.checkSlot(step.slot, u, step);
          for (let l = last; l >= Math.max(first, firstTrainable); l--) net.backwardWeightLayer(k, l, me.grads, slot.ws, rows, step.accumulate);
          if (step.releasesSlot) runtime.releaseSlot(step.slot);
          break;
        default: {
          const unknown: never = step.kind;
          throw new Error(`pipeline stage ${stage}: unknown action kind ${String(unknown)}`);
        }
      }
      span(ctx.trace, `${step.kind}${u}`, t);
      if (step.stash >= 0) runtime.copyStage(me.stash[step.stash]!, layout.params);
      if (step.update) {
        const t2 = mark(ctx.trace);
        runtime.update();
        totals.updates++;
        span(ctx.trace, "update", t2);
      }
      yield* sync.point();
    }
  }
  return {
    lossSum: totals.lossSum,
    samples: totals.samples,
    inconsistency: totals.inconsistencyCount > 0 ? totals.inconsistencySum / totals.inconsistencyCount : undefined,
    updates: stage === 0 ? totals.updates : 0,
    layerUpdates: totals.updates * me.chunks.reduce((n, ch) => n + ch.last - ch.first + 1, 0),
    waitedMs: sync.waitedMs - waitedBefore,
    elapsedMs: performance.now() - started,
  };
}

function* waitAtLeast(words: Int32Array, word: Ptr, target: number, sync: RoleContext["sync"], what: string) {
  for (let seen = Atomics.load(words, word >> 2); seen < target; seen = Atomics.load(words, word >> 2)) {
    yield* sync.waitChange(word, seen, what);
  }
  sync.observe(word);
}

/**
 * The kernels behind a stage's actions. Weight vectors are whole-model sized; only the stage's float
 * range [lo, hi) is read or written.
 */
class StageRuntime {
  private readonly k: KernelExports;
  private readonly n: number;
  private readonly owners: Int32Array;
  private readonly claims: Int32Array;
  private readonly words: Int32Array;
  private readonly updates: Int32Array;

  constructor(
    private readonly ctx: RoleContext,
    private readonly layout: PipelineLayout,
    private readonly me: StageLayout,
    private readonly stage: number,
  ) {
    this.k = ctx.k;
    this.n = me.hi - me.lo;
    this.owners = new Int32Array(ctx.memory.buffer, layout.slotOwner, Math.max(1, layout.slots.length));
    this.claims = new Int32Array(ctx.memory.buffer, layout.slotClaims, Math.max(1, layout.slots.length));
    this.words = new Int32Array(ctx.memory.buffer);
    this.updates = new Int32Array(ctx.memory.buffer, layout.updates, layout.stages.length);
  }

  private range(base: Ptr): Ptr {
    return base + this.me.lo * 4;
  }

  copyStage(to: Ptr, from: Ptr): void {
    this.k.copy(this.range(to), this.range(from), this.n);
  }

  /** ‖a − b‖² over the stage's range: contents, never pointers. */
  distance(a: Ptr, b: Ptr): number {
    return this.k.squared_distance(this.range(a), this.range(b), this.n);
  }

  /** The vector an action reads. */
  weights(w: Weights): Ptr {
    const { layout, me } = this;
    switch (w.from) {
      case "live":
        return layout.params;
      case "stash":
        return me.stash[w.buffer]!;
      case "predicted": {
        const step = Atomics.load(this.updates, this.stage);
        const wrote = me.prediction !== 0 && predictWeights(this.k, this.ctx.setup.optimizer, this.range(me.prediction), this.region(), w.steps, step);
        return wrote ? me.prediction : layout.params;
      }
    }
  }

  /** The stage's whole range as one update region (state vectors are laid out like the weights). */
  private region(): UpdateRegion {
    const { layout, me } = this;
    const at = (base: Ptr | undefined) => (base ? this.range(base) : 0);
    return { w: this.range(layout.params), g: this.range(me.grads), m: at(layout.state[0]), v: at(layout.state[1]), n: this.n };
  }

  /** Apply the stage's accumulated gradient, layer by layer, as the stage's next update. */
  update(): void {
    const { ctx, layout, me } = this;
    const step = Atomics.add(this.updates, this.stage, 1) + 1;
    for (const l of me.chunks.flatMap((c) => Array.from({ length: c.last - c.first + 1 }, (_, i) => c.first + i))) {
      const region = ctx.net.params[l]!;
      if (region.floats === 0) continue;
      applyUpdate(this.k, ctx.setup.optimizer, updateRegion(layout.params, me.grads, layout.state, region.offset, region.floats), step);
    }
  }

  // Activation slots: the lowering hands them out; these checks make a reused live slot an error
  // instead of silently wrong gradients.
  /**
   * Stage 0's F claims the slot once every stage has given up its previous unit. Within a window the
   * lowering guarantees that has happened, so finding the slot held there is an error. Across a window
   * boundary a later stage may still run the previous window's deferred W's (zero-bubble schedules):
   * the claim waits for them, which cannot deadlock, since no action of a window waits for the next
   * window. In a run across processes a later stage's release arrives as a relayed wake that may trail
   * the hand-offs that let stage 0 go on, so there the claim waits in every case.
   */
  *claimSlot(slot: number, unit: number): Generator<Blocked, void, void> {
    const { perWindow } = this.layout.shape;
    const claims = Atomics.load(this.claims, slot);
    const owner = Atomics.load(this.owners, slot) - 1;
    const acrossProcesses = this.ctx.setup.processes !== undefined;
    for (let s = 0; s < this.layout.stages.length; s++) {
      const released = this.layout.slotReleased + (s * this.layout.slots.length + slot) * 4;
      for (let seen = Atomics.load(this.words, released >> 2); seen < claims; seen = Atomics.load(this.words, released >> 2)) {
        if (!acrossProcesses && Math.floor(owner / perWindow) === Math.floor(unit / perWindow)) throw new Error(`pipeline: activation slot ${slot} handed to unit ${unit} while unit ${owner} still holds it`);
        yield* this.ctx.sync.waitChange(released, seen, `stage ${s} to finish unit ${owner} (activation slot ${slot})`);
      }
      this.ctx.sync.observe(released);
    }
    Atomics.store(this.claims, slot, claims + 1);
    Atomics.store(this.owners, slot, unit + 1);
  }

  checkSlot(slot: number, unit: number, step: Step): void {
    const owner = Atomics.load(this.owners, slot);
    if (owner !== unit + 1) throw new Error(`pipeline stage ${this.stage}: ${step.kind} of unit ${unit} finds its activation slot ${slot} held by ${owner === 0 ? "nobody" : `unit ${owner - 1}`}`);
  }

  /** This stage is done with the slot's unit: count it (stage 0's next claim of the slot waits for every stage's count). */
  releaseSlot(slot: number): void {
    this.ctx.sync.wake(this.layout.slotReleased + (this.stage * this.layout.slots.length + slot) * 4);
  }

}
