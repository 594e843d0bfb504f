/**
 * What a worker thread offers the orchestrator over comlink: optionally warm the kernels up, start
 * on the run's memory, then run role programs by name. The worker entry (workers/worker.ts)
 * implements it with the role table.
 */
import type { RunSetup } from "./context.ts";
import type { FaultPlan } from "./fault.ts";
import type { RoleArgs } from "./roles.ts";
import type { PrefaultSpec, WarmUpReport, WarmUpSpec } from "./warm-up.ts";

export interface WorkerApi {
  /** Before init, while the main thread starts the run: warm the kernels up on a memory of the worker's own (see warm-up.ts). */
  warmUp(module: WebAssembly.Module, spec: WarmUpSpec, words: Int32Array, run: PrefaultSpec | null): WarmUpReport;
  init(module: WebAssembly.Module, memory: WebAssembly.Memory, setup: RunSetup, worker: number, fault: FaultPlan | null): void;
  run(role: string, args: RoleArgs): unknown;
}
