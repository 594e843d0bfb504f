/**
 * Synchronisation as role programs see it.
 *
 * A role program (a sync worker, a layerwise forward or backward thread, a pipeline stage, a gossip
 * node) is a generator function. Wherever it must wait for its peers it writes `yield* sync.barrier()`.
 * Two executors give `sync` a meaning:
 *  - threaded: the generator runs inside a worker and `barrier()` blocks that thread on Atomics.wait,
 *    so it never actually yields;
 *  - deterministic: every program runs in one thread and `barrier()` yields to a seeded scheduler
 *    until all parties have arrived.
 * The algorithm code is the same in both, which is what makes deterministic replay a faithful test.
 */
import { Control, StopRequested, WORD } from "./control.ts";
import type { Outbox } from "./outbox.ts";
import { withoutTopTier } from "../kernels/jit.ts";

/** What a program yields: it is blocked and waits for `reason`. Only the deterministic executor sees it. */
export interface Blocked {
  waitingFor: string;
}

export type RoleProgram<R = void> = Generator<Blocked, R, void>;

export interface Sync {
  /** All `parties` programs must arrive before any leaves. Reusable: generation-counted. */
  barrier(): Generator<Blocked, void, void>;
  /**
   * Block until the i32 at byte offset `word` differs from `seen`. Callers read the word, test their
   * condition, and wait with the value they read, so a change in between is never missed.
   */
  waitChange(word: number, seen: number, what: string): Generator<Blocked, void, void>;
  /** Bump the i32 at `word` and wake everyone waiting on it. */
  wake(word: number): void;
  /**
   * The program acts on the value it read at `word` without waiting for it (it had already changed).
   * Only virtual time cares: the program's clock moves to when that value was written.
   */
  observe(word: number): void;
  /** A point where the deterministic scheduler may switch programs; nothing on real threads. */
  point(): Generator<Blocked, void, void>;
  /**
   * A point where only virtual time may switch programs: the simulated executor lets every program
   * whose clock is behind this one's run first; real threads and the deterministic scheduler go on.
   * A simulated program's step between two yields runs at once, in the order of the clocks at which
   * the steps start, while its kernels advance its clock: what the step does to memory after a kernel
   * would be seen by programs whose clocks have not reached that time yet. So a program that computes
   * and then touches state others read or write without synchronisation (a layer's weights and
   * version, written after its gradient) comes here in between, and the access lands at its time.
   */
  virtualPoint(): Generator<Blocked, void, void>;
  /** Throws StopRequested when a peer failed or the run was interrupted. */
  checkStop(): void;
  /**
   * Declare that this program sends `bytes` to its peers as `messages` messages (pipeline hand-offs,
   * gossip exchanges). In shared memory the kernels that read a peer's data already pay for it, so
   * only the simulated executor charges for this, by its network model; real threads do nothing.
   * `to`: the programs that read the messages, one per message, where known (a simulated run placed
   * on processes charges only those read in another process).
   */
  send(bytes: number, messages?: number, to?: readonly number[]): void;
  /** Declare this program's part in an all-reduce of `bytes` among `parties` programs (as `send`). */
  allReduce(bytes: number, parties: number): void;
  /** Milliseconds this program has spent blocked (threads only; 0 under the deterministic executor). */
  readonly waitedMs: number;
}

/** How long a thread sleeps between checks of the stop flag while it waits. */
const WAIT_SLICE_MS = 50;
/**
 * How long a waiter polls before sleeping, when every party has a core of its own. Measured on the
 * 2-core machine (mlp, batch 128, 2 workers): peers reach the gradient barrier a mean 0.33 ms apart
 * (per-step compute jitter) and a futex wake-up then costs ~60 µs more; polling for up to 0.5 ms
 * removes that wake-up. With more parties than cores, polling would steal the core a peer needs, so
 * such runs sleep at once; so do the programs of a run across processes, whose wakes need the main
 * threads and the server to run.
 */
const SPIN_MS = 0.5;
/** The machine's cores as the runtime reports them. */
export const CORES = typeof navigator !== "undefined" ? navigator.hardwareConcurrency : 1;
/**
 * Spinning pays only while the peer is actually running. On a machine shared with other processes
 * the peer is often descheduled, and a spinning waiter then takes the core the peer needs: measured on
 * the 2-core machine at load average 5 (sync, batch 128, 2 workers, 5 epochs, separate processes,
 * alternating), always spinning gave 14–17k samples/s, never spinning 24–35k. So spinning adapts, as
 * adaptive mutexes do: a waiter keeps spinning while most recent spins ended in time, and otherwise
 * sleeps at once, trying a spin again only every SPIN_PROBE_EVERY-th wait to notice when the machine
 * has quietened.
 */
const SPIN_PROBE_EVERY = 8;

/** Real threads: a generation barrier on the control words, with the stop flag checked while waiting. */
export class ThreadSync implements Sync {
  waitedMs = 0;
  private readonly all: Int32Array;
  /** Recent spins that ended before SPIN_MS, exponentially weighted (1: all of them). */
  private spinSuccess = 1;
  private waitsSinceProbe = 0;

  constructor(
    private readonly control: Control,
    private readonly parties: number,
    memory: WebAssembly.Memory,
    /** A peer that has not arrived after this long is treated as hung. */
    private readonly timeoutMs = 120_000,
    /**
     * A run that spans processes: `parties` are this process's programs, and the last of them to arrive
     * hands the barrier to the main thread (WORD.barrierHandOff), which releases it after exchanging
     * what the other processes need and wrote.
     */
    private readonly releasedByMainThread = false,
    /** A run that spans processes: every woken word is also queued here for the main thread to relay. */
    private readonly outbox: Outbox | null = null,
  ) {
    this.all = new Int32Array(memory.buffer);
  }

  *barrier(): Generator<Blocked, void, void> {
    const started = performance.now();
    try {
      this.arriveAndWait();
    } finally {
      this.waitedMs += performance.now() - started;
    }
  }

  *waitChange(word: number, seen: number, what: string): Generator<Blocked, void, void> {
    const index = word >> 2;
    if (Atomics.load(this.all, index) !== seen) return;
    const started = performance.now();
    try {
      if (this.spin(index, seen)) return;
      const deadline = Date.now() + this.timeoutMs;
      while (Atomics.load(this.all, index) === seen) {
        this.checkStop();
        if (Date.now() > deadline) throw new Error(`waited ${this.timeoutMs / 1000} s for ${what}`);
        Atomics.wait(this.all, index, seen, WAIT_SLICE_MS);
      }
    } finally {
      this.waitedMs += performance.now() - started;
    }
  }

  wake(word: number): void {
    Atomics.add(this.all, word >> 2, 1);
    Atomics.notify(this.all, word >> 2);
    this.outbox?.push(word, () => {
      this.checkStop();
      Atomics.wait(this.all, this.control.words.byteOffset / 4 + WORD.stop, 0, 1);
    });
  }

  *point(): Generator<Blocked, void, void> {}

  *virtualPoint(): Generator<Blocked, void, void> {}

  observe(): void {}

  send(): void {}

  allReduce(): void {}

  /** Poll briefly before sleeping when every party has a core (see SPIN_MS). True if it changed. */
  private spin(index: number, seen: number): boolean {
    if (this.parties > CORES) return false;
    // Across processes the wake travels through the main threads and the server, which need the core a
    // spinning waiter holds (1f1b D = 2 on two processes: 6-9% faster without the spin).
    if (this.outbox) return false;
    if (this.spinSuccess < 0.5 && ++this.waitsSinceProbe < SPIN_PROBE_EVERY) return false;
    this.waitsSinceProbe = 0;
    const changed = pollUntil(this.all, index, seen, performance.now() + SPIN_MS);
    this.spinSuccess = 0.8 * this.spinSuccess + (changed ? 0.2 : 0);
    return changed;
  }

  private arriveAndWait(): void {
    const w = this.control.words;
    this.checkStop();
    const generation = Atomics.load(w, WORD.barrierGeneration);
    const last = Atomics.add(w, WORD.barrierCount, 1) === this.parties - 1;
    if (last && this.releasedByMainThread) {
      Atomics.add(w, WORD.barrierHandOff, 1);
      Atomics.notify(w, WORD.barrierHandOff);
    } else if (last) {
      Atomics.store(w, WORD.barrierCount, 0);
      Atomics.add(w, WORD.barrierGeneration, 1);
      Atomics.notify(w, WORD.barrierGeneration);
      return;
    }
    if (!this.releasedByMainThread && this.spin(this.control.words.byteOffset / 4 + WORD.barrierGeneration, generation)) return;
    const deadline = Date.now() + this.timeoutMs;
    while (Atomics.load(w, WORD.barrierGeneration) === generation) {
      this.checkStop();
      if (Date.now() > deadline) throw new Error(`a peer did not reach the barrier within ${this.timeoutMs / 1000} s`);
      Atomics.wait(w, WORD.barrierGeneration, generation, WAIT_SLICE_MS);
    }
  }

  checkStop(): void {
    if (this.control.stopRequested) throw new StopRequested("stopped because a peer failed");
  }
}

/**
 * Poll the i32 at `index` until it differs from `seen` (true) or the clock passes `until` (false).
 * Kept off the FTL tier (see jit.ts): a spin loop gains nothing from it, and with two workers on two
 * cores its compilation (2–5 ms each time, in every worker) preempts a worker in the first epoch.
 */
const pollUntil = withoutTopTier((all: Int32Array, index: number, seen: number, until: number): boolean => {
  do {
    for (let i = 0; i < 256; i++) if (Atomics.load(all, index) !== seen) return true;
  } while (performance.now() < until);
  return false;
});

/** Run a program to completion on this thread (the threaded executor's inner loop). */
export function runToEnd<R>(program: RoleProgram<R>): R {
  for (;;) {
    const r = program.next();
    if (r.done) return r.value;
  }
}
