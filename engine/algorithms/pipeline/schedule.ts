/**
 * Pipeline schedules as data (the split of PyTorch's `torch.distributed.pipelining`): a schedule is,
 * per stage, the list of actions that stage runs in order. Generators build them here; validate.ts
 * checks them, simulate.ts times them, and the runtime only executes them.
 *
 * Actions: F = forward, B = full backward, or B split for zero-bubble schedules into I (input
 * gradient, on the critical path: the previous stage waits for it) and W (weight gradient, which
 * nobody waits for and can fill bubbles). A microbatch's activations on a stage are live from its F
 * until its B (or its W, which still reads them).
 *
 * Derivations (D stages, M microbatches, every stage costs f per F and b per B, no communication):
 * - Any schedule with full backwards has makespan ≥ (M+D−1)(f+b): the last stage cannot start before
 *   (D−1)f, then does M(f+b) of work, and the gradient of its last backward still has D−1 stages to
 *   cross, (D−1)b. GPipe and 1F1B both reach the bound, so both have bubble (D−1)/(M+D−1), for any f, b.
 * - ZB-H1 with f = i = w = 1: stage 0 waits D−1 after its warm-up for the first input gradient and is
 *   busy from then on; the W's each stage defers fill what was 1F1B's drain bubble. Makespan
 *   3M+D−1 for M ≥ D, bubble (D−1)/(3M+D−1): a third of 1F1B's bubble time (D−1 instead of 3(D−1)).
 */

export type ActionKind = "F" | "B" | "I" | "W";

export interface Action {
  kind: ActionKind;
  microbatch: number;
  stage: number;
  /** The weight version the action uses: for asynchronous schedules, the number of updates the stage has applied before the microbatch's F. */
  version?: number;
  /**
   * Which weights the action reads (annotated by a weight strategy, strategies.ts; default "version"):
   *   "version"    the stage's weights after `version` updates (0 when absent): the live weights if the
   *                stage has applied no more since, else a stashed copy of them (weight stashing);
   *   "live"       whatever the stage's weights are when the action runs;
   *   "predicted"  Ŵ = W − lr·s·Δ, a guess of the live weights `predictSteps` updates ahead (SpecTrain,
   *                PipeOptim); the live weights when s = 0 or no update has happened yet.
   */
  weights?: WeightSource;
  predictSteps?: number;
  /**
   * B or W: the stage applies the gradients accumulated since its previous update right after this
   * action. When no action of a schedule says, a flushed schedule updates after each stage's last
   * action and an asynchronous one after every B and W (see `updatePoints`).
   */
  update?: boolean;
}

export type WeightSource = "version" | "live" | "predicted";

export interface Schedule {
  name: string;
  /** Pipeline stages D: the workers, one action list each. */
  stages: number;
  microbatches: number;
  /**
   * Interleaved schedules (Megatron's virtual stages): each worker holds v chunks of layers, the
   * network being cut into D·v virtual stages, worker k holding virtual stages k, k + D, k + 2D, …
   * An action's `stage` is then its virtual stage (≡ k mod D on list k), and the waits run along
   * virtual stages. Absent or 1: one chunk per worker, `stage` = the list's index.
   */
  virtualStages?: number;
  /** Per stage (worker), in execution order. */
  actions: Action[][];
  /** true: weights updated once per batch after all microbatches; false: after every backward (asynchronous). */
  flush: boolean;
  /** The schedule's declared per-stage bound on live activations (F done, B or W not yet). */
  maxInFlight: number[];
}

export type ScheduleBuilder = (stages: number, microbatches: number) => Schedule;

const act = (kind: ActionKind, microbatch: number, stage: number): Action => ({ kind, microbatch, stage });

function checkSize(name: string, D: number, M: number): void {
  if (!Number.isInteger(D) || D < 1) throw new RangeError(`${name}: stages must be a positive integer, got ${D}`);
  if (!Number.isInteger(M) || M < 1) throw new RangeError(`${name}: microbatches must be a positive integer, got ${M}`);
}

const stagesOf = <T>(D: number, f: (k: number) => T): T[] => Array.from({ length: D }, (_, k) => f(k));

/** GPipe: every stage runs all forwards, then all backwards (in microbatch order), then one update. */
export function gpipe(D: number, M: number): Schedule {
  checkSize("gpipe", D, M);
  const actions = stagesOf(D, (k) => {
    const list: Action[] = [];
    for (let m = 0; m < M; m++) list.push(act("F", m, k));
    for (let m = 0; m < M; m++) list.push(act("B", m, k));
    return list;
  });
  return { name: "gpipe", stages: D, microbatches: M, actions, flush: true, maxInFlight: stagesOf(D, () => M) };
}

/**
 * One stage of 1F1B: min(D−k−1, M) warm-up forwards, then one forward and one backward at a time,
 * then the remaining backwards. The forward of microbatch j+warmup runs before the backward of j, so
 * at most warmup+1 = min(D−k, M) microbatches are live.
 */
function oneFOneBStage(D: number, M: number, k: number): Action[] {
  const warmup = Math.min(D - k - 1, M);
  const list: Action[] = [];
  for (let m = 0; m < warmup; m++) list.push(act("F", m, k));
  for (let j = 0; j < M; j++) {
    if (j + warmup < M) list.push(act("F", j + warmup, k));
    list.push(act("B", j, k));
  }
  return list;
}

/** 1F1B with flush (PipeDream-Flush, DAPPLE): GPipe's bubble, at most D−k microbatches live on stage k. */
export function oneFOneB(D: number, M: number): Schedule {
  checkSize("1f1b", D, M);
  return {
    name: "1f1b",
    stages: D,
    microbatches: M,
    actions: stagesOf(D, (k) => oneFOneBStage(D, M, k)),
    flush: true,
    maxInFlight: stagesOf(D, (k) => Math.min(D - k, M)),
  };
}

/**
 * Asynchronous 1F1B (PipeDream, 2BW, SpecTrain, PipeOptim): a window of M microbatches of the steady
 * state, in 1F1B's per-stage order, with no flush: the stage updates its weights after every backward.
 * Each F is annotated with the version PipeDream's weight stashing gives it, the number of backwards
 * the stage has completed before it (so F of microbatch m on stage k uses version
 * max(0, m − (D−k−1)): weights D−k−1 updates old), and each B with its F's version.
 */
export function asyncOneFOneB(D: number, M: number): Schedule {
  checkSize("async-1f1b", D, M);
  const actions = stagesOf(D, (k) => annotateVersions(oneFOneBStage(D, M, k)));
  return { name: "async-1f1b", stages: D, microbatches: M, actions, flush: false, maxInFlight: stagesOf(D, (k) => Math.min(D - k, M)) };
}

/** Versions for a stage that updates after every B (or W): F sees all updates so far; B, I and W reuse their F's. */
function annotateVersions(list: Action[]): Action[] {
  let updates = 0;
  const versionOf = new Map<number, number>();
  return list.map((a) => {
    if (a.kind === "F") {
      versionOf.set(a.microbatch, updates);
      return { ...a, version: updates };
    }
    const version = versionOf.get(a.microbatch) ?? 0;
    if (a.kind === "B" || a.kind === "W") updates++;
    return { ...a, version };
  });
}

/**
 * ZB-H1 (Qi et al., arXiv 2401.10241): 1F1B's order with each B split into I and W. The I's keep
 * 1F1B's places (the critical path now carries only input gradients); stage k runs the W of
 * microbatch j−k after the I of j, so the last stages, which would idle longest in 1F1B's drain,
 * hold up to k W's back and run them there. That keeps every stage at most min(D, M) microbatches
 * live — 1F1B's peak, the first stage's — though later stages now reach it too (in 1F1B they hold
 * D−k); the paper's ZB-H1 bounds every worker by p in the same way. With f = i = w the bubble drops
 * from 1F1B's 3(D−1) per stage to D−1.
 */
export function zbH1(D: number, M: number): Schedule {
  checkSize("zb-h1", D, M);
  const actions = stagesOf(D, (k) => {
    const warmup = Math.min(D - k - 1, M);
    const list: Action[] = [];
    for (let m = 0; m < warmup; m++) list.push(act("F", m, k));
    for (let j = 0; j < M; j++) {
      if (j + warmup < M) list.push(act("F", j + warmup, k));
      list.push(act("I", j, k));
      if (j >= k) list.push(act("W", j - k, k));
    }
    for (let m = Math.max(0, M - k); m < M; m++) list.push(act("W", m, k));
    return list;
  });
  return { name: "zb-h1", stages: D, microbatches: M, actions, flush: true, maxInFlight: stagesOf(D, () => Math.min(D, M)) };
}

/**
 * Interleaved 1F1B (Narayanan et al., SC 2021, "Efficient Large-Scale Language Model Training on GPU
 * Clusters Using Megatron-LM", section 2.2): the network is cut into D·v virtual stages and worker k
 * holds chunks k, k + D, …, k + (v−1)·D, so a microbatch visits every worker v times. Each worker
 * runs Megatron's order: its j-th forward is chunk ⌊j/D⌋ mod v of microbatch ⌊j/(D·v)⌋·D + j mod D
 * (D microbatches through one chunk, then the same D through the next), its j-th backward the same
 * with the chunks in reverse; (D−k−1)·2 + (v−1)·D warm-up forwards, then one forward and one
 * backward at a time, then the remaining backwards. With each chunk costing 1/v of a stage, the
 * bubble shrinks from 1F1B's (D−1)/(M+D−1) to (D−1)/(v·M+D−1) (Megatron: (D−1)/(v·M) of the ideal
 * time) at the price of v times the hand-offs. Needs M a multiple of D, as Megatron's does.
 */
export function interleaved(D: number, M: number, v: number): Schedule {
  checkSize(`interleaved:${v}`, D, M);
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`interleaved: virtual stages per worker must be a positive integer, got ${v}`);
  if (M % D !== 0) throw new RangeError(`interleaved:${v}: microbatches ${M} must be a multiple of the ${D} stages (each chunk takes D microbatches at a time)`);
  const total = M * v;
  const forwardAt = (k: number, j: number) => act("F", Math.floor(j / (D * v)) * D + (j % D), Math.floor(j / D) % v * D + k);
  const backwardAt = (k: number, j: number) => act("B", Math.floor(j / (D * v)) * D + (j % D), (v - 1 - (Math.floor(j / D) % v)) * D + k);
  const actions = stagesOf(D, (k) => {
    const warmup = Math.min(total, (D - k - 1) * 2 + (v - 1) * D);
    const list: Action[] = [];
    for (let j = 0; j < warmup; j++) list.push(forwardAt(k, j));
    for (let j = 0; j < total - warmup; j++) {
      list.push(forwardAt(k, j + warmup));
      list.push(backwardAt(k, j));
    }
    for (let j = total - warmup; j < total; j++) list.push(backwardAt(k, j));
    return list;
  });
  const s: Schedule = { name: `interleaved:${v}`, stages: D, microbatches: M, virtualStages: v, actions, flush: true, maxInFlight: [] };
  s.maxInFlight = peakInFlight(s);
  return s;
}

/** The virtual stages of a schedule, D·v (D when it has no virtual stages). */
export const virtualStageCount = (s: Schedule): number => s.stages * (s.virtualStages ?? 1);

export const SCHEDULES: Record<string, ScheduleBuilder> = {
  gpipe,
  "1f1b": oneFOneB,
  "async-1f1b": asyncOneFOneB,
  "zb-h1": zbH1,
};

/** Names `buildSchedule` accepts besides those of SCHEDULES. */
export const SCHEDULE_PATTERNS = ["interleaved:V"];

/** A schedule by name: one of SCHEDULES, or interleaved:V (V virtual stages per worker). Throws RangeError on a bad name or size. */
export function buildSchedule(name: string, D: number, M: number): Schedule {
  const builder = SCHEDULES[name];
  if (builder) return builder(D, M);
  const m = /^interleaved:(\d+)$/.exec(name);
  if (m) {
    const v = Number(m[1]);
    if (v < 1 || v > 64) throw new RangeError(`${name}: want 1 to 64 virtual stages per worker`);
    return interleaved(D, M, v);
  }
  throw new RangeError(`${name}: expected one of ${[...Object.keys(SCHEDULES), ...SCHEDULE_PATTERNS].join(", ")}`);
}

export const SCHEDULE_SUMMARIES: Record<string, string> = {
  gpipe: "all forwards, then all backwards, one update per batch (GPipe)",
  "1f1b": "warm-up forwards, then one forward and one backward, one update per batch (PipeDream-Flush, DAPPLE)",
  "async-1f1b": "1F1B without flush, an update after every backward, versions annotated for weight stashing (PipeDream)",
  "zb-h1": "1F1B with backwards split into input (I) and weight (W) gradients, W's filling the bubbles (ZB-H1)",
  "interleaved:V": "1F1B over V non-adjacent chunks of layers per worker (Megatron's virtual stages), one update per batch; M a multiple of D",
};

/** Per stage, the most microbatches live at once (F done, B or W not yet; per chunk where a worker holds several), following the list order. */
export function peakInFlight(s: Schedule): number[] {
  return s.actions.map((list) => {
    let live = 0;
    let peak = 0;
    for (const a of list) {
      if (a.kind === "F") peak = Math.max(peak, ++live);
      else if (a.kind === "B" || a.kind === "W") live--;
    }
    return peak;
  });
}

/**
 * Per stage, the most distinct weight versions that live microbatches need at once: the copies
 * weight stashing keeps (PipeDream: D−k on stage k). 1 for schedules without versions.
 */
export function peakStashedVersions(s: Schedule): number[] {
  return s.actions.map((list) => {
    const live = new Map<string, number>(); // (virtual stage, microbatch) → version
    let peak = 0;
    for (const a of list) {
      if (a.kind === "F") {
        live.set(`${a.stage}:${a.microbatch}`, a.version ?? 0);
        peak = Math.max(peak, new Set(live.values()).size);
      } else if (a.kind === "B" || a.kind === "W") live.delete(`${a.stage}:${a.microbatch}`);
    }
    return Math.max(peak, 1);
  });
}

/** `2F0`-style label (stage, kind, microbatch), as PyTorch writes actions. */
export function actionLabel(a: Action): string {
  return `${a.stage}${a.kind}${a.microbatch}${a.version !== undefined ? `v${a.version}` : ""}`;
}

/** Does the action write weight gradients (a full B, or the W of a split backward)? */
export const writesGradient = (a: { kind: ActionKind }): boolean => a.kind === "B" || a.kind === "W";

/**
 * Per action of stage k, whether the stage updates its weights right after it. Explicit `update`
 * flags win when any action of the schedule carries one; otherwise a flushed schedule updates once,
 * after each stage's last action, and an asynchronous one after every action that writes gradients.
 */
export function updatePoints(s: Schedule, k: number): boolean[] {
  const list = s.actions[k]!;
  const explicit = s.actions.some((l) => l.some((a) => a.update !== undefined));
  if (explicit) return list.map((a) => a.update === true);
  if (s.flush) return list.map((_, p) => p === list.length - 1);
  return list.map(writesGradient);
}
