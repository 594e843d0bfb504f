/**
 * An executor runs one role program per (logical) worker and returns their results in worker order.
 * `threads`: real workers (WorkerPool). `deterministic`: one thread, seeded interleaving.
 * `simulated`: the deterministic programs on virtual clocks, costed by a calibrated table.
 * Roles are named; the table behind the names comes from above (see roles.ts).
 */
import type { RoleArgs } from "./roles.ts";

export const EXECUTORS = ["threads", "deterministic", "simulated"] as const;
export type ExecutorName = (typeof EXECUTORS)[number];

/** A simulated executor's time: seconds of the last run() call, and since the session opened. */
export interface VirtualClock {
  lastRunSeconds: number;
  totalSeconds: number;
}

export interface Executor {
  readonly size: number;
  run<R>(role: string, args: (worker: number) => RoleArgs): Promise<R[]>;
  terminate(): void;
  /** Present when the executor keeps virtual time: then every duration it reports is in it. */
  readonly clock?: VirtualClock;
}
