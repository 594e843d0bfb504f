/**
 * Runs that span processes: the words this process's programs bump with `sync.wake` (a pipeline
 * stage's "unit u forwarded" flag, say), in the order they were bumped, for the main thread to relay to
 * the process that waits on them. A ring of i32 entries in shared memory: programs claim an entry with
 * an atomic add and write the word's offset into it; the main thread takes entries in claim order.
 *
 * Only words the main thread acts on are worth queueing: each queued word wakes it (an event-loop turn,
 * a context switch), and a pipeline stage also bumps words only its own process waits on (stage 0's
 * slot releases). So the main thread may give the ranges of words it relays (`relayOnly`); a program
 * then queues only words inside them. Without ranges every word is queued.
 */
import type { ArenaPlanner } from "../memory/arena.ts";

/** Entries in the ring: a producer that finds it full waits for the main thread to catch up. */
export const OUTBOX_ENTRIES = 4096;
/** The most ranges of relayed words a filter holds (more: no filter, every word is queued). */
export const OUTBOX_RANGES = 15;
/**
 * Two counters (claimed, taken), each on its own cache line; the filter (how many ranges, then
 * [lo, hi) byte offsets per range) on two lines of its own, read-only while programs run; then the entries.
 */
const HEADER_WORDS = 64;
const CLAIMED = 0;
const TAKEN = 16;
const RANGES = 32;
const RANGE_AT = 33;

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
    if (!this.relays(word)) return;
    const index = Atomics.add(this.words, CLAIMED, 1);
    while (index - Atomics.load(this.words, TAKEN) >= OUTBOX_ENTRIES) waitIfFull();
    Atomics.store(this.words, HEADER_WORDS + (index % OUTBOX_ENTRIES), word);
    Atomics.notify(this.words, CLAIMED);
  }

  /** Whether `word` is queued: it lies in one of the filter's ranges, or there is no filter. */
  relays(word: number): boolean {
    const ranges = this.words[RANGES]!;
    if (ranges === 0) return true;
    for (let r = 0; r < ranges; r++) if (word >= this.words[RANGE_AT + 2 * r]! && word < this.words[RANGE_AT + 2 * r + 1]!) return true;
    return false;
  }

  /**
   * Main thread, before any program runs: queue only these words from now on (byte offsets, any
   * order); consecutive words become one range. False, and no filter, where they need more than
   * OUTBOX_RANGES ranges.
   */
  relayOnly(words: readonly number[]): boolean {
    const sorted = [...new Set(words)].sort((a, b) => a - b);
    const ranges: [number, number][] = [];
    for (const w of sorted) {
      const last = ranges[ranges.length - 1];
      if (last && last[1] === w) last[1] = w + 4;
      else ranges.push([w, w + 4]);
    }
    // An empty set still needs one range (an empty one): 0 ranges means "every word".
    if (ranges.length === 0) ranges.push([0, 0]);
    if (ranges.length > OUTBOX_RANGES) {
      this.words[RANGES] = 0;
      return false;
    }
    ranges.forEach(([lo, hi], r) => {
      this.words[RANGE_AT + 2 * r] = lo;
      this.words[RANGE_AT + 2 * r + 1] = hi;
    });
    this.words[RANGES] = ranges.length;
    return true;
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
