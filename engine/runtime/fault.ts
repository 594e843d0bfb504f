/**
 * Fault injection for tests: make one worker fail at start-up or throw from inside a kernel call
 * after a number of calls, to prove a failing worker ends the run with a clear error and no hang.
 */
import type { KernelExports } from "../kernels/abi.ts";
import { wrapKernels } from "./kernel-timer.ts";

export interface FaultPlan {
  worker: number;
  /** init: fail to start; kernel: throw from a kernel call; hang: spin forever inside one (threads only). */
  at: "init" | "kernel" | "hang";
  /** With at = "kernel" or "hang": the call number that fails. */
  afterCalls?: number;
}

export function injectFault(k: KernelExports, fault: FaultPlan): KernelExports {
  let calls = 0;
  const limit = fault.afterCalls ?? 10;
  return wrapKernels(k, (name, call) => {
    if (++calls === limit) {
      if (fault.at === "hang") for (;;); // a stuck kernel: only the orchestrator's watchdog can end this
      throw new Error(`injected fault in kernel ${name} (call ${calls}) of worker ${fault.worker}`);
    }
    return call();
  });
}
