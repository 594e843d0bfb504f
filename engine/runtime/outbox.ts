/**
 * Runs that span processes: the words this process's programs bump with `sync.wake` (a pipeline
 * stage's "unit u forwarded" flag, say), in the order they were bumped, for the main thread to relay to
 * the process that waits on them. A ring of i32 entries in shared memory: programs claim an entry with
 * an atomic add and write the word's offset into it; the main thread takes entries in claim order.
 */
import type { ArenaPlanner } from "../memory/arena.ts";

/** Entries in the ring: a producer that finds it full waits for the main thread to catch up. */
export const OUTBOX_ENTRIES = 4096;
/** Two counters (claimed, taken), each on its own cache line, then the entries. */
const HEADER_WORDS = 32;
const CLAIMED = 0;
const TAKEN = 16;

export function planOutbox(planner: ArenaPlanner): number {
  return planner.reserve("control", "control.outbox", (HEADER_WORDS + OUTBOX_ENTRIES) * 4);
}

export class Outbox {
  private readonly words: Int32Array;

  constructor(memory: WebAssembly.Memory, at: number) {
    this.words = new Int32Array(memory.buffer, at, HEADER_WORDS + OUTBOX_ENTRIES);
  }

  /** A program: queue `word` (a byte offset, never 0) for relaying. `waitIfFull` sleeps a little and may throw (the stop flag). */
  push(word: number, waitIfFull: () => void): void {
    const index = Atomics.add(this.words, CLAIMED, 1);
    while (index - Atomics.load(this.words, TAKEN) >= OUTBOX_ENTRIES) waitIfFull();
    Atomics.store(this.words, HEADER_WORDS + (index % OUTBOX_ENTRIES), word);
    Atomics.notify(this.words, CLAIMED);
  }

  /** Main thread: entries claimed so far (wait on it with `claimedWord`). */
  claimed(): number {
    return Atomics.load(this.words, CLAIMED);
  }

  taken(): number {
    return Atomics.load(this.words, TAKEN);
  }

  /** The array and index to wait on for new claims. */
  get claimedWord(): [Int32Array, number] {
    return [this.words, CLAIMED];
  }

  /** Main thread: the next entry's word, or 0 while its producer has claimed it but not yet written it. */
  take(): number {
    const index = Atomics.load(this.words, TAKEN);
    const slot = HEADER_WORDS + (index % OUTBOX_ENTRIES);
    const word = Atomics.load(this.words, slot);
    if (word === 0) return 0;
    Atomics.store(this.words, slot, 0);
    Atomics.store(this.words, TAKEN, index + 1);
    return word;
  }
}
