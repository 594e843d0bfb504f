/**
 * The rules every schedule obeys, checked on the data alone (as PyTorch's pipelining validator does):
 *  - shape: one list per stage, every action on its own stage's list (virtual stage ≡ k mod D on
 *    list k where workers hold several chunks), microbatches in [0, M);
 *  - per stage (per chunk), exactly one F per microbatch, and for each microbatch either one B or one
 *    I and one W (so #I = #W); B or I after its F, W after its I;
 *  - live activations (F done, B or W not yet) never above the stage's declared maxInFlight;
 *  - versions: B, I and W use their F's version; a flushed schedule has one version per batch (0) and
 *    updates once, after its last action; an asynchronous stage's forwards never go back to older
 *    weights nor ahead of the updates applied; only B and W update; predictions look s ≥ 0 steps ahead;
 *  - cross-stage: F(k,m) waits for F(k−1,m) and B(k,m) for B(k+1,m); lists whose waits form a cycle
 *    never finish — the dry run on the simulator reports "not progressing at stage k …".
 * Each violation is one line; an empty list means the schedule is valid.
 */
import { updatePoints, writesGradient, type Action, type Schedule } from "./schedule.ts";
import { NotProgressingError, simulate } from "./simulate.ts";

export function validateSchedule(s: Schedule): string[] {
  const D = s.stages;
  const M = s.microbatches;
  if (!Number.isInteger(D) || D < 1) return [`stages must be a positive integer, got ${D}`];
  if (!Number.isInteger(M) || M < 1) return [`microbatches must be a positive integer, got ${M}`];
  if (!Array.isArray(s.actions) || s.actions.length !== D) return [`expected ${D} per-stage action lists, got ${Array.isArray(s.actions) ? s.actions.length : "none"}`];
  const v = s.virtualStages ?? 1;
  if (!Number.isInteger(v) || v < 1) return [`virtualStages must be a positive integer, got ${v}`];
  if (v > 1 && !s.flush) return [`virtual stages (interleaved) need a flushed schedule: one update per batch`];
  const errors: string[] = [];
  if (!Array.isArray(s.maxInFlight) || s.maxInFlight.length !== D) errors.push(`expected ${D} maxInFlight bounds, got ${Array.isArray(s.maxInFlight) ? s.maxInFlight.length : "none"}`);

  // Dry-run only when every stage's own order holds: a missing or misplaced action would stall the
  // run too, and the per-stage message says more.
  let ordered = true;
  s.actions.forEach((list, k) => {
    if (!checkStage(s, k, list, errors)) ordered = false;
  });
  if (ordered) {
    try {
      simulate(s, { f: 1, b: 1 });
    } catch (e) {
      if (!(e instanceof NotProgressingError)) throw e;
      errors.push(e.message);
    }
  }
  return errors;
}

const KINDS = new Set(["F", "B", "I", "W"]);
const name = (a: Action) => `${a.kind} of microbatch ${a.microbatch}`;

/** Adds the stage's violations; true when its actions are complete and in order (bounds and versions aside). */
function checkStage(s: Schedule, k: number, list: Action[], errors: string[]): boolean {
  const M = s.microbatches;
  const D = s.stages;
  const v = s.virtualStages ?? 1;
  // Indexed by chunk·M + microbatch (chunk = ⌊virtual stage / D⌋; 0 without virtual stages).
  const at = { F: new Int32Array(M * v).fill(-1), B: new Int32Array(M * v).fill(-1), I: new Int32Array(M * v).fill(-1), W: new Int32Array(M * v).fill(-1) };
  const key = (a: Action) => Math.floor(a.stage / D) * M + a.microbatch;
  const say = (text: string) => errors.push(`stage ${k}: ${text}`);
  const before = errors.length;
  let shapeOk = true;
  list.forEach((a, p) => {
    if (!KINDS.has(a.kind)) {
      say(`action #${p} has unknown kind '${String(a.kind)}'`);
      shapeOk = false;
    } else if (!Number.isInteger(a.microbatch) || a.microbatch < 0 || a.microbatch >= M) {
      say(`action #${p} ${a.kind} names microbatch ${a.microbatch}, outside 0..${M - 1}`);
      shapeOk = false;
    } else if (!Number.isInteger(a.stage) || a.stage % D !== k || a.stage < 0 || a.stage >= D * v) {
      say(`action #${p} ${name(a)} names stage ${a.stage}${v > 1 ? `, not one of this worker's virtual stages ${Array.from({ length: v }, (_, c) => c * D + k).join(", ")}` : ""}`);
      shapeOk = false;
    } else if (at[a.kind][key(a)]! >= 0) {
      say(`${name(a)} appears twice (actions #${at[a.kind][key(a)]} and #${p})`);
    } else at[a.kind][key(a)] = p;
  });
  if (!shapeOk) return false;

  let nI = 0;
  let nW = 0;
  for (let j = 0; j < M * v; j++) {
    const m = j % M;
    const of = v > 1 ? `microbatch ${m} on virtual stage ${Math.floor(j / M) * D + k}` : `microbatch ${m}`;
    const [f, b, i, w] = [at.F[j]!, at.B[j]!, at.I[j]!, at.W[j]!];
    if (i >= 0) nI++;
    if (w >= 0) nW++;
    if (f < 0) say(`no F of ${of}`);
    if (b >= 0 && (i >= 0 || w >= 0)) say(`${of} has both a full B and a split I/W backward`);
    else if (b < 0 && i < 0 && w < 0) say(`no B (or I and W) of ${of}`);
    if (b >= 0 && f >= 0 && b < f) say(`B of ${of} before its F`);
    if (i >= 0 && f >= 0 && i < f) say(`I of ${of} before its F`);
    if (w >= 0 && i < 0 && b < 0) say(`W of ${of} without its I`);
    if (i >= 0 && w < 0 && b < 0) say(`I of ${of} without its W`);
    if (w >= 0 && i >= 0 && w < i) say(`W of ${of} before its I`);
  }
  if (nI !== nW) say(`${nI} I but ${nW} W actions`);
  const ordered = errors.length === before;

  // Live activations, in list order (a stage runs one action at a time).
  const bound = s.maxInFlight?.[k];
  if (bound !== undefined) {
    let live = 0;
    for (let p = 0; p < list.length; p++) {
      const a = list[p]!;
      if (a.kind === "F") live++;
      else if (a.kind === "B" || a.kind === "W") live--;
      if (live > bound) {
        say(`${live} live activations after ${name(a)} (action #${p}), above its maxInFlight ${bound}`);
        break;
      }
    }
  }
  checkVersions(s, k, list, at.F, key, say);
  return ordered;
}

const WEIGHT_SOURCES = new Set(["version", "live", "predicted"]);

function checkVersions(s: Schedule, k: number, list: Action[], fAt: Int32Array, key: (a: Action) => number, say: (text: string) => void): void {
  const updatesAfter = updatePoints(s, k);
  let updates = 0;
  let last = -Infinity;
  list.forEach((a, p) => {
    const v = a.version;
    if (a.weights !== undefined && !WEIGHT_SOURCES.has(a.weights)) say(`${name(a)} reads weights '${String(a.weights)}', not version, live or predicted`);
    if (a.weights === "predicted" && (!Number.isInteger(a.predictSteps) || a.predictSteps! < 0)) say(`${name(a)} predicts ${a.predictSteps} steps ahead, not an integer ≥ 0`);
    if (a.weights === "predicted" && a.kind === "W") say(`${name(a)} cannot predict: a W applies the gradient its I computed`);
    if (updatesAfter[p] && !writesGradient(a)) say(`${name(a)} (action #${p}) updates the weights, but only a B or a W writes gradients`);
    if (s.flush && updatesAfter[p] && p !== list.length - 1) say(`${name(a)} (action #${p}) updates mid-batch, but a flushed schedule updates once, after its last action`);
    if (a.kind === "F") {
      if (v !== undefined) {
        if (!Number.isInteger(v) || v < 0) say(`${name(a)} has version ${v}, not an integer ≥ 0`);
        else if (s.flush && v !== 0) say(`${name(a)} uses version ${v}, but a flushed schedule updates only after the batch (version 0)`);
        else if (v > updates) say(`${name(a)} uses version ${v}, but the stage has applied only ${updates} updates before it`);
        else if (v < last) say(`${name(a)} goes back to version ${v} after a forward on version ${last}`);
        last = Math.max(last, v);
      }
    } else {
      const f = fAt[key(a)]!;
      const fv = f >= 0 ? list[f]!.version : undefined;
      if (v !== fv) say(`${name(a)} uses version ${v ?? "none"} but its F used ${fv ?? "none"}`);
    }
    if (updatesAfter[p]) updates++;
  });
}
