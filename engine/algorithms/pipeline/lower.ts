/**
 * Lowering: from an annotated schedule (strategies.ts) to what each stage's runtime needs per action,
 * with every buffer chosen here, from the schedule itself:
 *  - activation slots: a microbatch's activations (every stage's layers, in one whole-network
 *    workspace) are live from its F on stage 0 until its B or I on stage 0 — every other stage's
 *    F, B and I of it fall in between, since F(k,m) waits for F(k−1,m) and B(k,m) for B(k+1,m). Slots
 *    are handed out in stage 0's list order from a free list, so their number is stage 0's own
 *    in-flight peak, and no slot is given to a microbatch while another still holds it;
 *  - stashed versions: an action reading version v after the stage has updated past v reads a copy
 *    of v, taken just before the update that replaced it and dropped after v's last reader (copies
 *    are taken at updates, not at forwards: one copy per update, and only of versions still needed);
 *  - pending weight gradients: an I writes its weight gradient into a buffer its W adds to the stage's
 *    gradient (a W never reads activations, so the slot is free after I);
 *  - gradient accumulation: the first gradient after an update overwrites, the others add;
 *  - the loss scale of each microbatch: 1 / the samples of the update its gradient goes into (on the
 *    last stage), so every update applies a mean gradient.
 */
import { UserError } from "../../errors.ts";
import { updatePoints, writesGradient, type ActionKind, type Schedule } from "./schedule.ts";

export type Weights = { from: "live" } | { from: "stash"; buffer: number } | { from: "predicted"; steps: number };

export interface Step {
  kind: ActionKind;
  microbatch: number;
  /** F, B, I: the activation slot of the microbatch. */
  slot: number;
  /** F, B, I: the weights the action reads. */
  weights: Weights;
  /** B: add the gradient to the stage's (else overwrite); W: add the pending gradient (else copy it). */
  accumulate: boolean;
  /** I, W: the buffer holding the I's weight gradient until the W; −1 otherwise. */
  pending: number;
  /** Stage 0's B or I: the microbatch's activations are dead afterwards. */
  releasesSlot: boolean;
  /** ≥ 0: after the action and before its update, copy the live weights into this stash buffer. */
  stash: number;
  /** After the action (and the stash): apply the accumulated gradient. */
  update: boolean;
  /** Last stage's F: the loss gradient's scale. */
  lossScale: number;
}

export interface Lowered {
  schedule: Schedule;
  steps: Step[][];
  slots: number;
  /** Per stage: stash buffers and pending-gradient buffers needed at once. */
  stashBuffers: number[];
  pendingBuffers: number[];
}

/** A free list handing out the smallest free index; `peak` = how many were ever needed at once. */
class Pool {
  private free: number[] = [];
  peak = 0;
  take(): number {
    if (this.free.length === 0) return this.peak++;
    this.free.sort((a, b) => b - a);
    return this.free.pop()!;
  }
  give(i: number): void {
    this.free.push(i);
  }
}

/** `rows(m)`: the samples of microbatch m (for the loss scales). The schedule must be valid and annotated. */
export function lower(s: Schedule, rows: (m: number) => number): Lowered {
  const D = s.stages;
  const M = s.microbatches;

  // Activation slots, in stage 0's order.
  const slotOf = new Int32Array(M).fill(-1);
  const slots = new Pool();
  for (const a of s.actions[0]!) {
    if (a.kind === "F") slotOf[a.microbatch] = slots.take();
    else if (a.kind === "B" || a.kind === "I") slots.give(slotOf[a.microbatch]!);
  }

  // Loss scales from the last stage's updates.
  const lossScale = new Float64Array(M);
  {
    const list = s.actions[D - 1]!;
    const points = updatePoints(s, D - 1);
    let group: number[] = [];
    list.forEach((a, p) => {
      if (writesGradient(a)) group.push(a.microbatch);
      if (points[p]) {
        const samples = group.reduce((n, m) => n + rows(m), 0);
        for (const m of group) lossScale[m] = 1 / samples;
        group = [];
      }
    });
    if (group.length > 0) throw new UserError(`schedule '${s.name}': stage ${D - 1} never applies the gradients of microbatches ${group.join(", ")}`);
  }

  const stashBuffers: number[] = [];
  const pendingBuffers: number[] = [];
  const steps = s.actions.map((list, k) => {
    const points = updatePoints(s, k);
    // The last position reading each version through "version" weights.
    const lastRead = new Map<number, number>();
    list.forEach((a, p) => {
      if (a.kind !== "W" && (a.weights ?? "version") === "version") lastRead.set(a.version ?? 0, p);
    });
    const stash = new Pool();
    const pending = new Pool();
    const stashOf = new Map<number, number>(); // version → buffer
    const pendingOf = new Map<number, number>(); // microbatch → buffer
    const toFree = new Map<number, number[]>(); // position → buffers free after it
    let updates = 0;
    let sinceUpdate = false;
    const out = list.map((a, p): Step => {
      let weights: Weights = { from: "live" };
      const source = a.weights ?? "version";
      if (a.kind !== "W") {
        if (source === "predicted") weights = { from: "predicted", steps: a.predictSteps ?? 0 };
        else if (source === "version") {
          const v = a.version ?? 0;
          if (v > updates) throw new Error(`lower: stage ${k} ${a.kind}${a.microbatch} reads version ${v} before it exists (${updates} updates): the schedule was not validated`);
          if (v < updates) weights = { from: "stash", buffer: stashOf.get(v)! };
        }
      }
      let accumulate = false;
      let pendingBuffer = -1;
      if (a.kind === "I") pendingOf.set(a.microbatch, (pendingBuffer = pending.take()));
      if (a.kind === "W") {
        pendingBuffer = pendingOf.get(a.microbatch)!;
        pending.give(pendingBuffer);
      }
      if (writesGradient(a)) {
        accumulate = sinceUpdate;
        sinceUpdate = true;
      }
      for (const b of toFree.get(p) ?? []) stash.give(b);
      let stashBuffer = -1;
      if (points[p]) {
        // Version `updates` is about to be replaced: keep a copy if anyone reads it later.
        if ((lastRead.get(updates) ?? -1) > p) {
          stashBuffer = stash.take();
          stashOf.set(updates, stashBuffer);
          const last = lastRead.get(updates)!;
          toFree.set(last, [...(toFree.get(last) ?? []), stashBuffer]);
        }
        updates++;
        sinceUpdate = false;
      }
      return {
        kind: a.kind,
        microbatch: a.microbatch,
        slot: slotOf[a.microbatch]!,
        weights,
        accumulate,
        pending: pendingBuffer,
        releasesSlot: k === 0 && (a.kind === "B" || a.kind === "I"),
        stash: stashBuffer,
        update: points[p]!,
        lossScale: k === D - 1 && a.kind === "F" ? lossScale[a.microbatch]! : 0,
      };
    });
    if (sinceUpdate) throw new UserError(`schedule '${s.name}': stage ${k} never applies the gradients of its last backwards (no update after them)`);
    stashBuffers.push(stash.peak);
    pendingBuffers.push(pending.peak);
    return out;
  });
  return { schedule: s, steps, slots: slots.peak, stashBuffers, pendingBuffers };
}
