/**
 * An executor runs one role program per (logical) worker and returns their results in worker order.
 * `threads`: real workers (WorkerPool). `deterministic`: one thread, seeded interleaving.
 */
import type { RoleName } from "../algorithms/roles.ts";

export const EXECUTORS = ["threads", "deterministic"] as const;
export type ExecutorName = (typeof EXECUTORS)[number];

export interface Executor {
  readonly size: number;
  run<R>(role: RoleName, args: (worker: number) => Record<string, number>): Promise<R[]>;
  terminate(): void;
}
