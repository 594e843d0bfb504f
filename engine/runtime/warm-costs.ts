/**
 * The streaming kernels' warm cost by their call's footprint F (the bytes their operands take), as a
 * cost table holds it (KernelCost.warm, and weighted_sum's warmTwoInputs, costs.ts): seconds per byte
 * by F, linear in log(F) between the footprints and flat beyond, so a call costs
 * fixed + F · secondsPerByte(F). Measured warm (the same call repeated): the rate steps up where F
 * leaves a cache level, which one rate for all sizes cannot follow. weighted_sum sums two inputs in a
 * loop of its own (both pointers and weights in registers), 1.4–1.7× faster per byte than three or
 * more: a curve of its own. Here: the cost function, the loader's checks, and the curves as the cache
 * model takes them.
 */
import type { CostTable } from "./costs.ts";
import { curveAt } from "./cache-model.ts";
import { isStreamingKernel, STREAMING_KERNELS, streamingFootprint, type StreamingKernel } from "./streaming-kernels.ts";
import { isNumber } from "./json-check.ts";

/** Seconds of a call of streaming kernel `name`: fixed (already scaled) + F · its curve at F, times contextFactor. */
export function warmCostFunction(name: StreamingKernel, warm: WarmCurve, twoInputs: WarmCurve | undefined, fixed: number, contextFactor: number): (args: unknown[]) => number {
  const scaled = (w: WarmCurve) => ({ footprints: w.footprints, rate: w.secondsPerByte.map((s) => s * contextFactor) });
  const many = scaled(warm);
  const two = twoInputs ? scaled(twoInputs) : many;
  return (args) => {
    const a = args as number[];
    const f = streamingFootprint(name, a);
    const w = name === "weighted_sum" && a[3] === 2 ? two : many;
    return fixed + f * curveAt(w.footprints, w.rate, f);
  };
}

export interface WarmCurve {
  /** Footprints, bytes, ascending. */
  footprints: number[];
  /** Seconds per byte of a call whose operands take footprints[i] bytes, ≥ 0. */
  secondsPerByte: number[];
}

/** A streaming kernel's warm curves: required for those (weighted_sum: both), refused for any other kernel. */
export function checkWarmCurves(name: string, c: Record<string, unknown>, fail: (what: string) => never): void {
  if (!isStreamingKernel(name)) {
    if (c.warm !== undefined) fail(`kernels.${name}.warm: only the streaming kernels (${STREAMING_KERNELS.join(", ")}) have a cost by footprint`);
  } else checkWarm(`kernels.${name}.warm`, c.warm, fail);
  if (name === "weighted_sum") checkWarm(`kernels.${name}.warmTwoInputs`, c.warmTwoInputs, fail);
  else if (c.warmTwoInputs !== undefined) fail(`kernels.${name}.warmTwoInputs: only weighted_sum has a cost for two inputs`);
}

function checkWarm(where: string, json: unknown, fail: (what: string) => never): void {
  const w = json as Record<string, unknown> | null | undefined;
  if (typeof w !== "object" || w === null || Array.isArray(w)) fail(`${where}: missing (the streaming kernels' cost per byte by the call's footprint; run skein calibrate again)`);
  const { footprints, secondsPerByte } = w as Record<string, unknown>;
  if (!Array.isArray(footprints) || footprints.length < 1 || !footprints.every((f, i) => isNumber(f) && f > 0 && (i === 0 || f > footprints[i - 1])))
    fail(`${where}.footprints: must be a non-empty list of increasing positive byte counts`);
  if (!Array.isArray(secondsPerByte) || secondsPerByte.length !== (footprints as number[]).length || !secondsPerByte.every((s) => isNumber(s) && s >= 0))
    fail(`${where}.secondsPerByte: must be one number ≥ 0 per footprint`);
}

/**
 * The streaming kernels' warm curves of a table, as the cache model takes them (CacheTracker's
 * `warm`): by kernel name, and weighted_sum's two-input curve as "weighted_sum/2".
 */
export function warmCurves(table: Pick<CostTable, "kernels">): Record<string, WarmCurve> {
  const out: Record<string, WarmCurve> = {};
  for (const [name, c] of Object.entries(table.kernels)) {
    if (c.warm) out[name] = c.warm;
    if (c.warmTwoInputs) out[`${name}/2`] = c.warmTwoInputs;
  }
  return out;
}
