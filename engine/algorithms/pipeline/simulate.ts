/**
 * Dry-runs a schedule on a virtual clock. Every stage executes its list in order; an action starts
 * when its stage is free and its dependencies are done:
 *   F(k,m) after F(k−1,m) [+ comm];   B or I (k,m) after F(k,m) and the B or I of (k+1,m) [+ comm];
 *   W(k,m) after I(k,m).
 * The last stage's backward needs only its own F. With virtual stages (interleaved schedules) k runs
 * along the virtual stages, while each worker still runs one action at a time. Dependencies depend on the lists' order, not on the
 * costs, so a schedule either runs under every cost model or deadlocks under all of them: then
 * `simulate` throws NotProgressingError naming where each stuck stage waits.
 */
import { peakInFlight, virtualStageCount, type ActionKind, type Schedule } from "./schedule.ts";

export interface Costs {
  f: number;
  b: number;
  /** Input-gradient half of a split backward (default b/2). */
  i?: number;
  /** Weight-gradient half of a split backward (default b/2). */
  w?: number;
  /** Latency of sending activations or gradients to the next or previous stage (default 0). */
  comm?: number;
  /** Stage k's own costs where given (measured stages are never exactly balanced); the rest as above. */
  perStage?: { f?: number; b?: number; i?: number; w?: number }[];
}

export interface TimelineEntry {
  /** The stage (worker) that runs it; `index` is its position in that stage's list. */
  stage: number;
  index: number;
  kind: ActionKind;
  microbatch: number;
  start: number;
  end: number;
}

export interface StageStats {
  busy: number;
  /** makespan − busy: waiting at the start, in the middle, and after the stage's last action. */
  idle: number;
  /** Start and end of each action, aligned with the schedule's `actions[k]`. */
  startTimes: number[];
  endTimes: number[];
  peakInFlight: number;
}

export interface Simulation {
  makespan: number;
  perStage: StageStats[];
  /** Σ idle / (D × makespan). */
  bubbleFraction: number;
  /** Every action, by start time (then stage). */
  timeline: TimelineEntry[];
  peakInFlight: number[];
}

export class NotProgressingError extends Error {
  override name = "NotProgressingError";
}

export function durations(costs: Costs): Record<ActionKind, number> {
  const d = { F: costs.f, B: costs.b, I: costs.i ?? costs.b / 2, W: costs.w ?? costs.b / 2 };
  for (const [kind, v] of Object.entries({ ...d, comm: costs.comm ?? 0 })) {
    if (!Number.isFinite(v) || v < 0) throw new RangeError(`cost of ${kind} must be a finite number ≥ 0, got ${v}`);
  }
  return d;
}

export function simulate(s: Schedule, costs: Costs): Simulation {
  const stageCost = Array.from({ length: s.stages }, (_, k) => durations({ ...costs, ...costs.perStage?.[k] }));
  const comm = costs.comm ?? 0;
  const D = s.stages;
  const M = s.microbatches;
  const S = virtualStageCount(s);
  // End times by (virtual) stage × microbatch; NaN until done. `grad` holds the B or I: what stage k−1 waits for.
  const endF = Array.from({ length: S }, () => new Float64Array(M).fill(NaN));
  const endGrad = Array.from({ length: S }, () => new Float64Array(M).fill(NaN));
  const endI = Array.from({ length: S }, () => new Float64Array(M).fill(NaN));
  const next = new Array<number>(D).fill(0);
  const free = new Array<number>(D).fill(0);
  const perStage: StageStats[] = s.actions.map((list) => ({
    busy: 0,
    idle: 0,
    startTimes: new Array<number>(list.length).fill(NaN),
    endTimes: new Array<number>(list.length).fill(NaN),
    peakInFlight: 0,
  }));

  /** When the action's inputs are ready, or NaN while one is missing. */
  const readyAt = (k: number, kind: ActionKind, m: number): number => {
    switch (kind) {
      case "F":
        return k === 0 ? 0 : endF[k - 1]![m]! + comm;
      case "B":
      case "I": {
        const own = endF[k]![m]!;
        return k === S - 1 ? own : Math.max(own, endGrad[k + 1]![m]! + comm);
      }
      case "W":
        return endI[k]![m]!;
    }
  };

  let remaining = s.actions.reduce((n, list) => n + list.length, 0);
  let progress = true;
  for (let sweep = 0; progress && remaining > 0; sweep++) {
    progress = false;
    // Alternate directions: forwards flow down the stages, gradients flow up.
    for (let t = 0; t < D; t++) {
      const k = sweep % 2 === 0 ? t : D - 1 - t;
      const list = s.actions[k]!;
      const stats = perStage[k]!;
      while (next[k]! < list.length) {
        const a = list[next[k]!]!;
        const ready = readyAt(a.stage, a.kind, a.microbatch);
        if (Number.isNaN(ready)) break;
        const start = Math.max(free[k]!, ready);
        const took = stageCost[k]![a.kind];
        const end = start + took;
        stats.startTimes[next[k]!] = start;
        stats.endTimes[next[k]!] = end;
        stats.busy += took;
        free[k] = end;
        if (a.kind === "F") endF[a.stage]![a.microbatch] = end;
        else if (a.kind === "B") endGrad[a.stage]![a.microbatch] = end;
        else if (a.kind === "I") endGrad[a.stage]![a.microbatch] = endI[a.stage]![a.microbatch] = end;
        next[k]!++;
        remaining--;
        progress = true;
      }
    }
  }
  if (remaining > 0) throw new NotProgressingError(stuckMessage(s, next, endF));

  const makespan = Math.max(0, ...free);
  const peaks = peakInFlight(s);
  const timeline: TimelineEntry[] = [];
  s.actions.forEach((list, k) => {
    const stats = perStage[k]!;
    stats.idle = makespan - stats.busy;
    stats.peakInFlight = peaks[k]!;
    list.forEach((a, p) => timeline.push({ stage: k, index: p, kind: a.kind, microbatch: a.microbatch, start: stats.startTimes[p]!, end: stats.endTimes[p]! }));
  });
  timeline.sort((x, y) => x.start - y.start || x.stage - y.stage);
  const idle = perStage.reduce((sum, st) => sum + st.idle, 0);
  return { makespan, perStage, bubbleFraction: makespan > 0 ? idle / (D * makespan) : 0, timeline, peakInFlight: peaks };
}

/** "not progressing at stage 1 action #3 B0 (waits for B0 on stage 2); stage 2 at #1 F1 (waits for F1 on stage 1)". */
function stuckMessage(s: Schedule, next: number[], endF: Float64Array[]): string {
  const D = s.stages;
  const parts: string[] = [];
  for (let k = 0; k < D; k++) {
    const list = s.actions[k]!;
    if (next[k]! >= list.length) continue;
    const a = list[next[k]!]!;
    const m = a.microbatch;
    const v = a.stage; // the virtual stage (= k without virtual stages)
    let waits: string;
    if (a.kind === "F") waits = `F${m} on stage ${v - 1}`;
    else if (a.kind === "W") waits = `I${m} on stage ${v}`;
    else if (Number.isNaN(endF[v]![m]!)) waits = `F${m} on stage ${v}`;
    else waits = `the gradient of ${m} from stage ${v + 1}`;
    const where = `action #${next[k]} ${a.kind}${m} (waits for ${waits})`;
    parts.push(parts.length === 0 ? `not progressing at stage ${k} ${where}` : `stage ${k} at ${where}`);
  }
  return parts.join("; ");
}
