/**
 * Time spent inside kernels, per program: wraps every export so a profiled run can report how much
 * of a step is compute and how much is orchestration (queues, barriers, bookkeeping in TypeScript).
 */
import type { KernelExports } from "../kernels/abi.ts";

export interface KernelTimer {
  ms: number;
}

export function timeKernels(k: KernelExports, timer: KernelTimer): KernelExports {
  const wrapped: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(k)) {
    wrapped[name] =
      typeof value !== "function"
        ? value
        : (...args: unknown[]) => {
            const started = performance.now();
            try {
              return (value as (...a: unknown[]) => unknown)(...args);
            } finally {
              timer.ms += performance.now() - started;
            }
          };
  }
  return wrapped as unknown as KernelExports;
}
