/**
 * An executor runs one role program per (logical) worker and returns their results in worker order.
 * `threads`: real workers (WorkerPool). `deterministic`: one thread, seeded interleaving.
 * Roles are named; the table behind the names comes from above (see roles.ts).
 */
import type { RoleArgs } from "./roles.ts";

export const EXECUTORS = ["threads", "deterministic"] as const;
export type ExecutorName = (typeof EXECUTORS)[number];

export interface Executor {
  readonly size: number;
  run<R>(role: string, args: (worker: number) => RoleArgs): Promise<R[]>;
  terminate(): void;
}
