/**
 * A schedule from a JSON file (`skein train --schedule FILE`):
 *
 *   { "name": "mine", "stages": 2, "microbatches": 4, "flush": true,
 *     "actions": [["F0", "F1", "B0", "F2", "B1", ...], [...]] }
 *
 * One list per stage, in execution order; an action is a label `F3`, `B3`, `I3` or `W3` (kind and
 * microbatch, optionally `v2` for a weight version), or an object { kind, microbatch, version?,
 * update? } (with "stage", its virtual stage, where "virtualStages": V gives each worker V chunks of
 * layers, the interleaved form). `flush` defaults to true (one update per batch); `maxInFlight` defaults to the lists'
 * own peak. Whether the schedule is valid is the validator's business: this only reads its shape.
 * `skein schedule NAME --json` prints schedules in this form.
 */
import { UserError } from "../../errors.ts";
import { peakInFlight, type Action, type ActionKind, type Schedule } from "./schedule.ts";

const LABEL = /^([FBIW])(\d+)(?:v(\d+))?$/;

/** `where` names the input in messages; a schedule without a "name" is called `fallbackName`. */
export function parseScheduleJson(text: string, where: string, fallbackName = where): Schedule {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new UserError(`${where}: not JSON (${(e as Error).message})`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new UserError(`${where}: expected a JSON object with stages, microbatches and actions`);
  const o = raw as Record<string, unknown>;
  const int = (key: string): number => {
    const v = o[key];
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1) throw new UserError(`${where}: "${key}" must be a positive integer, got ${JSON.stringify(v)}`);
    return v;
  };
  const stages = int("stages");
  const microbatches = int("microbatches");
  if (!Array.isArray(o.actions) || o.actions.some((l) => !Array.isArray(l))) throw new UserError(`${where}: "actions" must be a list of per-stage lists`);
  if (o.flush !== undefined && typeof o.flush !== "boolean") throw new UserError(`${where}: "flush" must be true or false`);
  const actions = (o.actions as unknown[][]).map((list, k) => list.map((item, p) => readAction(item, k, `${where}: stage ${k} action #${p}`)));
  if (o.virtualStages !== undefined && (typeof o.virtualStages !== "number" || !Number.isInteger(o.virtualStages) || o.virtualStages < 1)) throw new UserError(`${where}: "virtualStages" must be a positive integer, got ${JSON.stringify(o.virtualStages)}`);
  const s: Schedule = {
    name: typeof o.name === "string" ? o.name : fallbackName,
    stages,
    microbatches,
    ...(o.virtualStages !== undefined && o.virtualStages !== 1 ? { virtualStages: o.virtualStages as number } : {}),
    actions,
    flush: o.flush === undefined ? true : o.flush,
    maxInFlight: [],
  };
  if (o.maxInFlight !== undefined) {
    if (!Array.isArray(o.maxInFlight) || o.maxInFlight.some((x) => typeof x !== "number")) throw new UserError(`${where}: "maxInFlight" must be a list of numbers`);
    s.maxInFlight = o.maxInFlight as number[];
  } else s.maxInFlight = actions.length === stages ? peakInFlight(s) : [];
  return s;
}

function readAction(item: unknown, stage: number, where: string): Action {
  if (typeof item === "string") {
    const m = LABEL.exec(item);
    if (!m) throw new UserError(`${where}: '${item}' is not an action label like F0, B3, I2, W2 or F1v0`);
    return { kind: m[1] as ActionKind, microbatch: Number(m[2]), stage, ...(m[3] !== undefined ? { version: Number(m[3]) } : {}) };
  }
  if (typeof item !== "object" || item === null) throw new UserError(`${where}: expected a label or an object, got ${JSON.stringify(item)}`);
  const a = item as Record<string, unknown>;
  if (typeof a.kind !== "string" || typeof a.microbatch !== "number") throw new UserError(`${where}: an action object needs "kind" and "microbatch"`);
  return {
    kind: a.kind as ActionKind,
    microbatch: a.microbatch,
    stage: typeof a.stage === "number" ? a.stage : stage,
    ...(typeof a.version === "number" ? { version: a.version } : {}),
    ...(typeof a.update === "boolean" ? { update: a.update } : {}),
  };
}
