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
import { readdirSync, readFileSync } from "node:fs";
import { JIT_THREAD_NAME } from "../runtime/compiler-threads.ts";

/** The name the runtime (Bun) gives a Worker's thread. */
const WORKER_THREAD = "Worker";

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
  let tasks: string[];
  try {
    tasks = readdirSync("/proc/self/task");
  } catch {
    return null;
  }
  let seconds = 0;
  let compilerSeconds = 0;
  let slices = 0;
  let workers = 0;
  for (const tid of tasks) {
    try {
      const name = readFileSync(`/proc/self/task/${tid}/comm`, "utf8").trim();
      if (name === WORKER_THREAD) {
        workers++;
        continue;
      }
      const [onCpu, , runs] = readFileSync(`/proc/self/task/${tid}/schedstat`, "utf8").trim().split(/\s+/).map(Number);
      if (!Number.isFinite(onCpu) || !Number.isFinite(runs)) return null;
      seconds += onCpu! / 1e9;
      if (name === JIT_THREAD_NAME) compilerSeconds += onCpu! / 1e9;
      slices += runs!;
    } catch {
      // A thread that ended between listing and reading: its time is gone either way.
    }
  }
  // No thread named like a worker: this runtime names them otherwise, and every thread would count.
  return workers > 0 ? { seconds, compilerSeconds, slices } : null;
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
