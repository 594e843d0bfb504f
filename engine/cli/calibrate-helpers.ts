/**
 * CPU time this process spends outside its worker threads while they train: the JavaScript engine's
 * compiler threads (JavaScriptCore's "JITWorker", also counted apart), its garbage collector's
 * helpers, the main thread.
 * On a machine where every core runs a worker, that time is taken from the workers; where a core is
 * idle, it runs there for free (see costs.ts, helperSecondsFor).
 *
 * Read from Linux's per-thread scheduler statistics (/proc/self/task/<tid>/schedstat: nanoseconds on
 * a CPU, nanoseconds waiting for one, timeslices run). Worker threads are the ones the runtime names
 * "Worker"; everything else in the process is a helper. Elsewhere there is no such account: null.
 */
import { JIT_THREAD_NAME } from "../runtime/compiler-threads.ts";
import { threadsOf, WORKER_THREAD, type ThreadStat } from "../runtime/thread-stats.ts";

export interface HelperCpu {
  /** CPU seconds of the process's threads other than the workers, since the thread started. */
  seconds: number;
  /** Of those, the JIT compiler threads' (JavaScriptCore's "JITWorker"). */
  compilerSeconds: number;
  /** Timeslices those threads ran (a slice ends when the thread sleeps or is preempted). */
  slices: number;
}

/** The process's helper threads' CPU so far, or null where the system keeps no per-thread account. */
export function helperCpu(): HelperCpu | null {
  const threads = threadsOf();
  // No thread named like a worker: this runtime names them otherwise, and every thread would count.
  if (!threads.some((t) => t.name === WORKER_THREAD)) return null;
  const helpers = threads.filter((t) => t.name !== WORKER_THREAD);
  if (helpers.some((t) => !Number.isFinite(t.onCpuSeconds) || !Number.isFinite(t.slices))) return null;
  const sum = (of: readonly ThreadStat[], f: (t: ThreadStat) => number) => of.reduce((a, t) => a + f(t), 0);
  return {
    seconds: sum(helpers, (t) => t.onCpuSeconds),
    compilerSeconds: sum(
      helpers.filter((t) => t.name === JIT_THREAD_NAME),
      (t) => t.onCpuSeconds,
    ),
    slices: sum(helpers, (t) => t.slices),
  };
}

/** What the helpers used between two readings (null if either is). */
export function helperCpuSince(before: HelperCpu | null, after: HelperCpu | null): HelperCpu | null {
  if (!before || !after) return null;
  return {
    seconds: Math.max(0, after.seconds - before.seconds),
    compilerSeconds: Math.max(0, after.compilerSeconds - before.compilerSeconds),
    slices: Math.max(0, after.slices - before.slices),
  };
}
