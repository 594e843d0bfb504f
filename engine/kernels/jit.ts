/**
 * Keeping JavaScriptCore's top tier off code that does not repay it.
 *
 * JavaScriptCore compiles a function that runs long (a loop of many iterations) with its optimising
 * tiers on background compiler threads: DFG in about a millisecond, then FTL, which takes 2–30 ms of
 * compiler-thread time for the functions below. A training run on two cores has no idle core for
 * that thread: it preempts a worker, and a synchronous step then waits for that worker. Two kinds of
 * loop trigger FTL without gaining from it:
 *  - a one-shot loop on the main thread (drawing the initial weights, 235k Gaussian draws for
 *    mlp:784-256-128-10): its FTL code is ready only after the loop has finished, so the compilation
 *    (about 30 ms, measured with BUN_JSC_reportFTLCompileTimes=1) is pure cost, and it lands in the
 *    first epoch;
 *  - a spin-wait: it runs for as long as the peer takes, whatever tier runs it.
 * Such code stays on the baseline and DFG tiers.
 */
import { noFTL } from "bun:jsc";

/** Never compile `fn` with FTL (baseline and DFG still apply). Call it before `fn` gets hot. */
export function withoutTopTier<F extends (...args: never[]) => unknown>(fn: F): F {
  noFTL(fn as unknown as (...args: unknown[]) => unknown);
  return fn;
}
