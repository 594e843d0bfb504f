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
import { CONTROL_LINE_WORDS, type Control } from "./control.ts";
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

/** Counters on each worker's line of Control.homes: one for a step's blocks, one for its reduction pieces. */
export const HOME = { blocks: 0, pieces: 1 } as const;

/**
 * Work sharing with homes: the items [0, n) are cut into one contiguous home range per worker of this
 * process, and a worker claims the items of its own home first, in order, then those left in the other
 * homes (the next worker's first). On a quiet machine every worker computes its own home, step after
 * step, so what it writes (its blocks' gradients, its pieces of the parameters and the optimizer's
 * state) stays in its own core's cache instead of moving between cores; a worker that falls behind
 * still loses its items to the others instead of making them wait. Each home has its own counter
 * (`slot` on its owner's line of control.homes), so every item is claimed exactly once. The counters
 * start at 0 in a fresh arena, and the owner rewinds its own after every pass, while nobody claims
 * from it (resetHome), so each pass, across epochs too, starts from 0.
 *
 * `homes[i]` is the range of local worker i (global worker first + i); `me` is the caller's local index.
 * Returns the item, or -1 when every home is exhausted.
 */
export function* claimFromHomes(
  sync: Sync,
  control: Control,
  slot: number,
  homes: readonly { lo: number; hi: number }[],
  first: number,
  me: number,
): Generator<Blocked, number, void> {
  yield* sync.point(); // deterministic executor: let another program claim first
  for (let i = 0; i < homes.length; i++) {
    const owner = (me + i) % homes.length;
    const { lo, hi } = homes[owner]!;
    const word = (first + owner) * CONTROL_LINE_WORDS + slot;
    // A load first: an exhausted home's line is only read, not taken away from its owner.
    if (Atomics.load(control.homes, word) >= hi - lo) continue;
    const k = Atomics.add(control.homes, word, 1);
    if (k < hi - lo) return lo + k;
  }
  return -1;
}

/** Rewind worker `worker`'s counter `slot`: only while no worker claims from that home. */
export function resetHome(control: Control, worker: number, slot: number): void {
  Atomics.store(control.homes, worker * CONTROL_LINE_WORDS + slot, 0);
}
