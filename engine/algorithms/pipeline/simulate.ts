/**
 * Dry-runs a schedule on a virtual clock. Every stage executes its list in order; an action starts
 * when its stage is free and its dependencies are done:
 *   F(k,m) after F(k−1,m) [+ comm];   B or I (k,m) after F(k,m) and the B or I of (k+1,m) [+ comm];
 *   W(k,m) after I(k,m).
 * The last stage's backward needs only its own F. Dependencies depend on the lists' order, not on the
 * costs, so a schedule either runs under every cost model or deadlocks under all of them: then
 * `simulate` throws NotProgressingError naming where each stuck stage waits.
 */
import { peakInFlight, type ActionKind, type Schedule } from "./schedule.ts";

export interface Costs {
  f: number;
  b: number;
  /** Input-gradient half of a split backward (default b/2). */
  i?: number;
  /** Weight-gradient half of a split backward (default b/2). */
  w?: number;
  /** Latency of sending activations or gradients to the next or previous stage (default 0). */
  comm?: number;
}

export interface TimelineEntry {
  stage: number;
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
  const cost = durations(costs);
  const comm = costs.comm ?? 0;
  const D = s.stages;
  const M = s.microbatches;
  // End times by stage × microbatch; NaN until done. `grad` holds the B or I: what stage k−1 waits for.
  const endF = Array.from({ length: D }, () => new Float64Array(M).fill(NaN));
  const endGrad = Array.from({ length: D }, () => new Float64Array(M).fill(NaN));
  const endI = Array.from({ length: D }, () => new Float64Array(M).fill(NaN));
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
        return k === D - 1 ? own : Math.max(own, endGrad[k + 1]![m]! + comm);
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
        const ready = readyAt(k, a.kind, a.microbatch);
        if (Number.isNaN(ready)) break;
        const start = Math.max(free[k]!, ready);
        const end = start + cost[a.kind];
        stats.startTimes[next[k]!] = start;
        stats.endTimes[next[k]!] = end;
        stats.busy += cost[a.kind];
        free[k] = end;
        if (a.kind === "F") endF[k]![a.microbatch] = end;
        else if (a.kind === "B") endGrad[k]![a.microbatch] = end;
        else if (a.kind === "I") endGrad[k]![a.microbatch] = endI[k]![a.microbatch] = end;
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
    list.forEach((a, p) => timeline.push({ stage: k, kind: a.kind, microbatch: a.microbatch, start: stats.startTimes[p]!, end: stats.endTimes[p]! }));
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
    let waits: string;
    if (a.kind === "F") waits = `F${m} on stage ${k - 1}`;
    else if (a.kind === "W") waits = `I${m} on stage ${k}`;
    else if (Number.isNaN(endF[k]![m]!)) waits = `F${m} on stage ${k}`;
    else waits = `the gradient of ${m} from stage ${k + 1}`;
    const where = `action #${next[k]} ${a.kind}${m} (waits for ${waits})`;
    parts.push(parts.length === 0 ? `not progressing at stage ${k} ${where}` : `stage ${k} at ${where}`);
  }
  return parts.join("; ");
}
