/**
 * Test-split evaluation, shared by every algorithm: each worker runs forward passes over its range of
 * test samples with the parameter vector it is given (the model, or the averaged model of a gossip run).
 */
import type { Ptr } from "../kernels/abi.ts";
import { loadBatch, type RoleContext } from "../runtime/context.ts";
import type { RoleProgram } from "../runtime/sync.ts";

export interface EvaluationResult {
  lossSum: number;
  correct: number;
  count: number;
}

export function* evaluateRange(ctx: RoleContext, params: Ptr, lo: number, hi: number): RoleProgram<EvaluationResult> {
  const buffers = ctx.setup.perWorker[ctx.worker]!;
  const { ws } = buffers;
  let lossSum = 0;
  let correct = 0;
  for (let from = lo; from < hi; from += ws.rows) {
    const rows = Math.min(ws.rows, hi - from);
    loadBatch(ctx, buffers, "test", null, from, rows);
    const r = ctx.net.evaluate(ctx.k, params, ws, rows);
    lossSum += r.lossSum;
    correct += r.correct;
  }
  return { lossSum, correct, count: hi - lo };
}
