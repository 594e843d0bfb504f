/**
 * Dynamic work sharing that stays deterministic: a step's work is cut into blocks fixed by the
 * configuration (never by the worker count), and workers take the next unclaimed block from a shared
 * counter until none is left. Who computes which block depends on thread timing; what each block
 * computes does not, and every result is written to the block's own place and combined in block order
 * afterwards, so the outcome is bitwise the same whichever worker took which block.
 *
 * Under the deterministic executor every claim is a scheduling point, so the seeded scheduler decides
 * who gets each block and tests can explore those assignments.
 */
import type { Control } from "./control.ts";
import type { Blocked, Sync } from "./sync.ts";

/**
 * The next block index from the counter `word` of the control block, or -1 when all `blocks` are
 * taken. The counter only grows while a pass runs; whoever owns the pass resets it to 0 while no
 * worker claims (between two barriers, or before the workers start).
 */
export function* claimBlock(sync: Sync, control: Control, word: number, blocks: number): Generator<Blocked, number, void> {
  yield* sync.point(); // deterministic executor: let another program claim first
  const block = Atomics.add(control.words, word, 1);
  return block < blocks ? block : -1;
}
