/**
 * Lowering: from an annotated schedule (strategies.ts) to what each stage's runtime needs per action,
 * with every buffer chosen here, from the schedule itself:
 *  - activation slots: a microbatch's activations (every stage's layers, in one whole-network
 *    workspace) are live from its F on stage 0 until every stage is done with it: its B, or the W of
 *    a split backward, which reads the saved activations and what the I kept. Each stage gives the
 *    microbatch up after its last action on it; the slot is free when all have. Stage 0's F hands out
 *    slots in list order and reuses a slot only when the schedule's waits guarantee that every stage
 *    has given its microbatch up before that F can start (vector clocks over the waits), so a slot is
 *    never handed out while live, under any timing. Without split backwards that is stage 0's own
 *    in-flight peak (stage 0's B(m) comes after every other stage's B(m)); W's that later stages
 *    defer past stage 0's next forwards make it larger;
 *  - stashed versions: an action reading version v after the stage has updated past v reads a copy
 *    of v, taken just before the update that replaced it and dropped after v's last reader (copies
 *    are taken at updates, not at forwards: one copy per update, and only of versions still needed);
 *  - gradient accumulation: the first gradient of a chunk's layers after an update overwrites, the
 *    others add;
 *  - the loss scale of each microbatch: 1 / the samples of the update its gradient goes into (on the
 *    last stage), so every update applies a mean gradient.
 */
import { UserError } from "../../errors.ts";
import { updatePoints, virtualStageCount, writesGradient, type ActionKind, type Schedule } from "./schedule.ts";

export type Weights = { from: "live" } | { from: "stash"; buffer: number } | { from: "predicted"; steps: number };

export interface Step {
  kind: ActionKind;
  microbatch: number;
  /** The (virtual) stage whose layers the action runs: the list's own index unless workers hold several chunks. */
  stage: number;
  /** F, B, I: the activation slot of the microbatch. */
  slot: number;
  /** F, B, I: the weights the action reads. */
  weights: Weights;
  /** B, W: add the weight gradient to the stage's (else overwrite it). */
  accumulate: boolean;
  /** The stage's last action on the microbatch (its B, or its W; of its last chunk): the stage gives the slot up after it. */
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
  /** Per stage: stash buffers needed at once. */
  stashBuffers: number[];
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

  const slotOf = assignSlots(s);
  const slots = { peak: slotOf.reduce((n, slot) => Math.max(n, slot + 1), 0) };

  // Loss scales from the last stage's updates.
  const lossScale = new Float64Array(M);
  {
    const list = s.actions[D - 1]!;
    const last = virtualStageCount(s) - 1;
    const points = updatePoints(s, D - 1);
    let group: number[] = [];
    list.forEach((a, p) => {
      if (writesGradient(a) && a.stage === last) group.push(a.microbatch);
      if (points[p]) {
        const samples = group.reduce((n, m) => n + rows(m), 0);
        for (const m of group) lossScale[m] = 1 / samples;
        group = [];
      }
    });
    if (group.length > 0) throw new UserError(`schedule '${s.name}': stage ${D - 1} never applies the gradients of microbatches ${group.join(", ")}`);
  }

  const stashBuffers: number[] = [];
  const steps = s.actions.map((list, k) => {
    const points = updatePoints(s, k);
    const lastUse = new Map<number, number>(); // microbatch → position of its last B or W on this list
    list.forEach((a, p) => writesGradient(a) && lastUse.set(a.microbatch, p));
    // The last position reading each version through "version" weights.
    const lastRead = new Map<number, number>();
    list.forEach((a, p) => {
      if (a.kind !== "W" && (a.weights ?? "version") === "version") lastRead.set(a.version ?? 0, p);
    });
    const stash = new Pool();
    const stashOf = new Map<number, number>(); // version → buffer
    const toFree = new Map<number, number[]>(); // position → buffers free after it
    let updates = 0;
    const written = new Set<number>(); // virtual stages (chunks) whose gradient has been written since the last update
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
      if (writesGradient(a)) {
        accumulate = written.has(a.stage);
        written.add(a.stage);
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
        written.clear();
      }
      return {
        kind: a.kind,
        microbatch: a.microbatch,
        stage: a.stage,
        slot: slotOf[a.microbatch]!,
        weights,
        accumulate,
        releasesSlot: lastUse.get(a.microbatch) === p,
        stash: stashBuffer,
        update: points[p]!,
        lossScale: a.stage === virtualStageCount(s) - 1 && a.kind === "F" ? lossScale[a.microbatch]! : 0,
      };
    });
    if (written.size > 0) throw new UserError(`schedule '${s.name}': stage ${k} never applies the gradients of its last backwards (no update after them)`);
    stashBuffers.push(stash.peak);
    return out;
  });
  return { schedule: s, steps, slots: slots.peak, stashBuffers };
}

/**
 * Per action (by stage and list position), how many of each stage's actions are certainly done when
 * it starts, through its own list's order and the waits F(k,m) → F(k−1,m), B or I (k,m) → B or I
 * (k+1,m): a vector clock. The schedule must be valid (its waits acyclic).
 */
export function happensBefore(s: Schedule): Int32Array[][] {
  const D = s.stages;
  const M = s.microbatches;
  const S = virtualStageCount(s);
  // By virtual stage: positions on that stage's worker list (stage mod D).
  const fAt = Array.from({ length: S }, () => new Int32Array(M).fill(-1));
  const gradAt = Array.from({ length: S }, () => new Int32Array(M).fill(-1)); // B or I
  s.actions.forEach((list) =>
    list.forEach((a, p) => {
      if (a.kind === "F") fAt[a.stage]![a.microbatch] = p;
      else if (a.kind === "B" || a.kind === "I") gradAt[a.stage]![a.microbatch] = p;
    }),
  );
  const clocks: Int32Array[][] = s.actions.map(() => []);
  const next = new Array<number>(D).fill(0);
  let remaining = s.actions.reduce((n, list) => n + list.length, 0);
  while (remaining > 0) {
    let progress = false;
    for (let k = 0; k < D; k++) {
      const list = s.actions[k]!;
      while (next[k]! < list.length) {
        const p = next[k]!;
        const a = list[p]!;
        let dep: [number, number] | null = null; // (list, position) of the action this one waits for
        if (a.kind === "F" && a.stage > 0) dep = [(a.stage - 1) % D, fAt[a.stage - 1]![a.microbatch]!];
        else if ((a.kind === "B" || a.kind === "I") && a.stage < S - 1) dep = [(a.stage + 1) % D, gradAt[a.stage + 1]![a.microbatch]!];
        if (dep && dep[1] >= next[dep[0]]!) break; // not reached yet
        const clock = p > 0 ? clocks[k]![p - 1]!.slice() : new Int32Array(D);
        clock[k] = p;
        if (dep) {
          const other = clocks[dep[0]]![dep[1]]!;
          for (let j = 0; j < D; j++) clock[j] = Math.max(clock[j]!, other[j]!);
          clock[dep[0]] = Math.max(clock[dep[0]]!, dep[1] + 1);
        }
        clocks[k]![p] = clock;
        next[k]!++;
        remaining--;
        progress = true;
      }
    }
    if (!progress) throw new Error(`lower: schedule '${s.name}' never finishes (its waits form a cycle): the schedule was not validated`);
  }
  return clocks;
}

/**
 * The activation slot of each microbatch: handed out at stage 0's F, in its list order, the smallest
 * slot whose previous microbatch every stage has certainly given up by then (see the header).
 */
function assignSlots(s: Schedule): Int32Array {
  const D = s.stages;
  const M = s.microbatches;
  const lastUse = Array.from({ length: D }, () => new Int32Array(M).fill(-1)); // position of the B or W
  s.actions.forEach((list, k) => list.forEach((a, p) => writesGradient(a) && (lastUse[k]![a.microbatch] = p)));
  const clocks = happensBefore(s);
  const slotOf = new Int32Array(M).fill(-1);
  const holder: number[] = []; // slot → microbatch, −1 when free
  s.actions[0]!.forEach((a, p) => {
    if (a.kind !== "F" || a.stage !== 0) return;
    const clock = clocks[0]![p]!;
    const released = (m: number) => m < 0 || lastUse.every((uses, j) => clock[j]! > uses[m]!);
    let slot = holder.findIndex(released);
    if (slot < 0) slot = holder.push(-1) - 1;
    holder[slot] = a.microbatch;
    slotOf[a.microbatch] = slot;
  });
  return slotOf;
}
