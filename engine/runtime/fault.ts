/**
 * Fault injection for tests: make one worker fail at start-up or throw from inside a kernel call
 * after a number of calls, to prove a failing worker ends the run with a clear error and no hang.
 */
import type { KernelExports } from "../kernels/abi.ts";
import { wrapKernels } from "./kernel-timer.ts";

export interface FaultPlan {
  worker: number;
  at: "init" | "kernel";
  /** With at = "kernel": the call number that throws. */
  afterCalls?: number;
}

export function injectFault(k: KernelExports, fault: FaultPlan): KernelExports {
  let calls = 0;
  const limit = fault.afterCalls ?? 10;
  return wrapKernels(k, (name, call) => {
    if (++calls === limit) throw new Error(`injected fault in kernel ${name} (call ${calls}) of worker ${fault.worker}`);
    return call();
  });
}
