/**
 * Wrappers around every kernel export: time spent inside kernels per program (a profiled run reports
 * how much of a step is compute and how much orchestration), and fault injection for tests.
 */
import type { KernelExports } from "../kernels/abi.ts";

/** A plain object of wrappers: wasm export objects are frozen, so a Proxy may not substitute values. */
export function wrapKernels(k: KernelExports, around: (name: string, call: () => unknown, args: unknown[]) => unknown): KernelExports {
  const wrapped: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(k)) {
    wrapped[name] = typeof value !== "function" ? value : (...args: unknown[]) => around(name, () => (value as (...a: unknown[]) => unknown)(...args), args);
  }
  return wrapped as unknown as KernelExports;
}

export interface KernelTimer {
  ms: number;
  /** Milliseconds per kernel export since the last takeKernelMsByName. */
  byName: Record<string, number>;
}

export const newKernelTimer = (): KernelTimer => ({ ms: 0, byName: {} });

/** The per-kernel times so far, and start counting afresh. */
export function takeKernelMsByName(timer: KernelTimer): Record<string, number> {
  const taken = timer.byName;
  timer.byName = {};
  return taken;
}

export function timeKernels(k: KernelExports, timer: KernelTimer): KernelExports {
  return wrapKernels(k, (name, call) => {
    const started = performance.now();
    try {
      return call();
    } finally {
      const ms = performance.now() - started;
      timer.ms += ms;
      timer.byName[name] = (timer.byName[name] ?? 0) + ms;
    }
  });
}
