/**
 * What a worker thread offers the orchestrator over comlink: start on the run's memory, then run
 * role programs by name. The worker entry (workers/worker.ts) implements it with the role table.
 */
import type { RunSetup } from "./context.ts";
import type { FaultPlan } from "./fault.ts";
import type { RoleArgs } from "./roles.ts";

export interface WorkerApi {
  init(module: WebAssembly.Module, memory: WebAssembly.Memory, setup: RunSetup, worker: number, fault: FaultPlan | null): void;
  run(role: string, args: RoleArgs): unknown;
}
