/**
 * Test-split evaluation, shared by every algorithm: the split is cut into blocks of `rows` samples and
 * the workers claim blocks until none is left (a worker the machine slows takes fewer), each running
 * forward passes with the parameter vector it is given (the model, or the averaged model of a gossip
 * run). Every block writes its loss and correct count to its own cell; the caller sums the cells in
 * block order, so the figures do not depend on which worker took which block.
 */
import type { Ptr } from "../kernels/abi.ts";
import { claimBlock } from "../runtime/claim.ts";
import { WORD } from "../runtime/control.ts";
import { loadBatch, type RoleContext } from "../runtime/context.ts";
import type { RoleProgram } from "../runtime/sync.ts";

/** Float64 cells per evaluation block: Σ loss, correct predictions. */
export const EVALUATION_CELLS = 2;

export interface EvaluationResult {
  /** Blocks this worker evaluated (their figures are in the cells). */
  blocks: number;
}

/**
 * Evaluate `params` on test samples [0, count) in blocks of `rows`, writing block b's Σ loss and
 * correct count to Float64 cells `cells + 16·b` and `cells + 16·b + 8`.
 */
export function* evaluateBlocks(ctx: RoleContext, params: Ptr, count: number, rows: number, cells: Ptr): RoleProgram<EvaluationResult> {
  const buffers = ctx.setup.perWorker[ctx.worker]!;
  const out = new Float64Array(ctx.memory.buffer, cells, Math.ceil(count / rows) * EVALUATION_CELLS);
  const blocks = Math.ceil(count / rows);
  let mine = 0;
  for (;;) {
    const b = yield* claimBlock(ctx.sync, ctx.control, WORD.evaluateNext, blocks);
    if (b < 0) break;
    const from = b * rows;
    const n = Math.min(rows, count - from);
    loadBatch(ctx, buffers, "test", null, from, n);
    const r = ctx.net.evaluate(ctx.k, params, buffers.ws, n);
    out[b * EVALUATION_CELLS] = r.lossSum;
    out[b * EVALUATION_CELLS + 1] = r.correct;
    mine++;
  }
  return { blocks: mine };
}
