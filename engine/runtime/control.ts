/**
 * The control block: Int32 words and Float64 cells at the start of the arena that workers and the
 * main thread use for per-step coordination (barriers, the stop flag, work counters, progress).
 * Everything here goes through Atomics; comlink only carries setup and per-epoch calls.
 *
 * Every word that more than one thread writes sits on a cache line of its own (CONTROL_LINE_WORDS
 * apart), and each worker's progress cells on a line of their own: a worker bumping its sample count
 * would otherwise take the barrier's line away from a peer spinning on it, every step.
 */
import type { ArenaPlanner } from "../memory/arena.ts";
import { planOutbox } from "./outbox.ts";

/** Int32 words per 64-byte cache line. */
export const CONTROL_LINE_WORDS = 16;
const line = (n: number) => n * CONTROL_LINE_WORDS;

/** Word indices inside the Int32 control array, one cache line apart. */
export const WORD = {
  /** Non-zero: every program stops at its next synchronisation point (a peer failed, or the user interrupted). */
  stop: line(0),
  barrierCount: line(1),
  barrierGeneration: line(2),
  /** Next block of the current step to claim (work sharing, see runtime/claim.ts). */
  claimNext: line(3),
  /** Next block of the evaluation pass to claim. */
  evaluateNext: line(4),
  /**
   * Runs that span processes: the last local arrival at a barrier bumps this word instead of releasing
   * the barrier, and the process's main thread releases it once the data other processes wrote for
   * this barrier is in place.
   */
  barrierHandOff: line(5),
  /** Epoch + 1 whose sample order is in the arena's order region (0: none); see epoch-order.ts. */
  orderEpoch: line(6),
  count: line(7),
} as const;

/** Per worker, one cache line: Float64 Σ loss of the current epoch at cell 0, Int32 samples done at word 2. */
const PROGRESS_LINE_BYTES = 64;

export interface ControlLayout {
  words: number; // byte offset of Int32[WORD.count]
  progress: number; // byte offset of one 64-byte line per worker
  homes: number; // byte offset of one 64-byte line per worker: its home counters (claim.ts)
  outbox: number; // byte offset of the ring of woken words a run across processes relays (outbox.ts)
}

export function planControl(planner: ArenaPlanner, workers: number): ControlLayout {
  return {
    words: planner.reserve("control", "control.words", WORD.count * 4),
    progress: planner.reserve("control", "control.progress", workers * PROGRESS_LINE_BYTES),
    homes: planner.reserve("control", "control.homes", workers * CONTROL_LINE_WORDS * 4),
    outbox: planOutbox(planner),
  };
}

export class Control {
  readonly words: Int32Array;
  /** Per worker, one cache line of counters for the work it claims first (claim.ts: HOME). */
  readonly homes: Int32Array;
  private readonly progressF64: Float64Array;
  private readonly progressI32: Int32Array;

  constructor(memory: WebAssembly.Memory, layout: ControlLayout, readonly workers: number) {
    this.words = new Int32Array(memory.buffer, layout.words, WORD.count);
    this.homes = new Int32Array(memory.buffer, layout.homes, workers * CONTROL_LINE_WORDS);
    this.progressF64 = new Float64Array(memory.buffer, layout.progress, (workers * PROGRESS_LINE_BYTES) / 8);
    this.progressI32 = new Int32Array(memory.buffer, layout.progress, (workers * PROGRESS_LINE_BYTES) / 4);
  }

  requestStop(): void {
    Atomics.store(this.words, WORD.stop, 1);
    // Wake every sleeper so it sees the flag now, not at its next timeout slice.
    Atomics.notify(this.words, WORD.barrierGeneration);
  }

  get stopRequested(): boolean {
    return Atomics.load(this.words, WORD.stop) !== 0;
  }

  read(word: number): number {
    return Atomics.load(this.words, word);
  }

  add(word: number, n: number): void {
    Atomics.add(this.words, word, n);
  }

  reset(word: number): void {
    Atomics.store(this.words, word, 0);
  }

  write(word: number, value: number): void {
    Atomics.store(this.words, word, value);
  }

  /** A worker's progress so far this epoch: its Σ loss, and `samples` more done. Only its own line is written. */
  report(worker: number, lossSum: number, samples: number): void {
    this.progressF64[(worker * PROGRESS_LINE_BYTES) / 8] = lossSum;
    Atomics.add(this.progressI32, (worker * PROGRESS_LINE_BYTES) / 4 + 2, samples);
  }

  /** A worker's progress cells as they are: Σ loss and samples this epoch (relayed across processes). */
  progressOf(worker: number): [lossSum: number, samples: number] {
    return [this.progressF64[(worker * PROGRESS_LINE_BYTES) / 8]!, Atomics.load(this.progressI32, (worker * PROGRESS_LINE_BYTES) / 4 + 2)];
  }

  /** Overwrite a worker's progress cells: the coordinator, with a follower's relayed figures. */
  setProgress(worker: number, lossSum: number, samples: number): void {
    this.progressF64[(worker * PROGRESS_LINE_BYTES) / 8] = lossSum;
    Atomics.store(this.progressI32, (worker * PROGRESS_LINE_BYTES) / 4 + 2, samples);
  }

  /** Samples done this epoch, all workers (read a few times a second by the main thread). */
  samplesDone(): number {
    let n = 0;
    for (let w = 0; w < this.workers; w++) n += Atomics.load(this.progressI32, (w * PROGRESS_LINE_BYTES) / 4 + 2);
    return n;
  }

  /** Σ loss this epoch, all workers. */
  lossSum(): number {
    let s = 0;
    for (let w = 0; w < this.workers; w++) s += this.progressF64[(w * PROGRESS_LINE_BYTES) / 8]!;
    return s;
  }

  /** Start of an epoch: no samples, no loss. Called by the main thread while no worker runs. */
  resetProgress(): void {
    this.progressF64.fill(0);
  }
}

/** Thrown inside a program that was told to stop; the pool reports the peer's error instead. */
export class StopRequested extends Error {
  override name = "StopRequested";
}
