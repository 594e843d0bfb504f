/**
 * The control block: a few Int32 words and Float64 cells at the start of the arena that workers and
 * the main thread use for per-step coordination (barriers, the stop flag, progress counters).
 * Everything here goes through Atomics; comlink only carries setup and per-epoch calls.
 */
import type { ArenaPlanner } from "../memory/arena.ts";

/** Word indices inside the Int32 control array. */
export const WORD = {
  /** Non-zero: every program stops at its next synchronisation point (a peer failed, or the user interrupted). */
  stop: 0,
  barrierCount: 1,
  barrierGeneration: 2,
  /** Samples of the current epoch whose gradient has been computed (progress). */
  samplesDone: 3,
  count: 16,
} as const;

export interface ControlLayout {
  words: number; // byte offset of Int32[WORD.count]
  workerLoss: number; // byte offset of Float64[workers]: Σ loss of the current epoch, per worker
}

export function planControl(planner: ArenaPlanner, workers: number): ControlLayout {
  return {
    words: planner.reserve("control", "control.words", WORD.count * 4),
    workerLoss: planner.reserve("control", "control.workerLoss", workers * 8),
  };
}

export class Control {
  readonly words: Int32Array;
  readonly workerLoss: Float64Array;

  constructor(memory: WebAssembly.Memory, layout: ControlLayout, workers: number) {
    this.words = new Int32Array(memory.buffer, layout.words, WORD.count);
    this.workerLoss = new Float64Array(memory.buffer, layout.workerLoss, workers);
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
}

/** Thrown inside a program that was told to stop; the pool reports the peer's error instead. */
export class StopRequested extends Error {
  override name = "StopRequested";
}
