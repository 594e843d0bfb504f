/**
 * A bounded multi-producer multi-consumer queue of small integers (slot indices) in shared memory.
 *
 * Layout, i32 words from `base`: lock, head (pops so far), tail (pushes so far), seq (bumped on every
 * change, the word waiters sleep on), then `capacity` items. head and tail only grow, so a pop's head
 * value is its place in the global pop order: algorithms use it as a ticket (layerwise's per-layer
 * turns). The critical section is a few loads and stores, so a spin lock is enough; under the
 * deterministic executor nothing yields inside it, so the lock is always free.
 */
import type { ArenaPlanner } from "../memory/arena.ts";
import type { Blocked, Sync } from "./sync.ts";

const LOCK = 0;
const HEAD = 1;
const TAIL = 2;
const SEQ = 3;
const ITEMS = 4;

export interface QueueLayout {
  base: number; // byte offset
  capacity: number;
}

export function planQueue(planner: ArenaPlanner, name: string, capacity: number): QueueLayout {
  return { base: planner.reserve("control", name, (ITEMS + capacity) * 4), capacity };
}

/** Fill a queue with 0..n−1 (a free list of slots), before any program runs. */
export function fillQueueWithIndices(memory: WebAssembly.Memory, layout: QueueLayout, n: number): void {
  const w = new Int32Array(memory.buffer, layout.base, ITEMS + layout.capacity);
  for (let i = 0; i < n; i++) w[ITEMS + i] = i;
  Atomics.store(w, HEAD, 0);
  Atomics.store(w, TAIL, n);
}

export class SharedQueue {
  private readonly w: Int32Array;
  private readonly seqWord: number;

  constructor(memory: WebAssembly.Memory, private readonly layout: QueueLayout, private readonly sync: Sync) {
    this.w = new Int32Array(memory.buffer, layout.base, ITEMS + layout.capacity);
    this.seqWord = layout.base + SEQ * 4;
  }

  /** Items pushed and not yet popped. */
  get length(): number {
    return Atomics.load(this.w, TAIL) - Atomics.load(this.w, HEAD);
  }

  *push(item: number): Generator<Blocked, void, void> {
    for (;;) {
      const seen = Atomics.load(this.w, SEQ);
      if (this.tryPush(item)) return this.sync.wake(this.seqWord);
      yield* this.sync.waitChange(this.seqWord, seen, "room in a full queue");
    }
  }

  /** The oldest item and its pop ticket (0, 1, 2, … over the queue's life). */
  *pop(): Generator<Blocked, { item: number; ticket: number }, void> {
    for (;;) {
      const seen = Atomics.load(this.w, SEQ);
      const got = this.tryPop();
      if (got) {
        this.sync.wake(this.seqWord);
        return got;
      }
      yield* this.sync.waitChange(this.seqWord, seen, "an item in an empty queue");
    }
  }

  private tryPush(item: number): boolean {
    this.lock();
    const tail = this.w[TAIL]!;
    const ok = tail - this.w[HEAD]! < this.layout.capacity;
    if (ok) {
      this.w[ITEMS + (tail % this.layout.capacity)] = item;
      this.w[TAIL] = tail + 1;
    }
    this.unlock();
    return ok;
  }

  private tryPop(): { item: number; ticket: number } | null {
    this.lock();
    const head = this.w[HEAD]!;
    const got = head < this.w[TAIL]! ? { item: this.w[ITEMS + (head % this.layout.capacity)]!, ticket: head } : null;
    if (got) this.w[HEAD] = head + 1;
    this.unlock();
    return got;
  }

  private lock(): void {
    while (Atomics.compareExchange(this.w, LOCK, 0, 1) !== 0) {
      // contention lasts a few stores: spin
    }
  }

  private unlock(): void {
    Atomics.store(this.w, LOCK, 0);
  }
}
