/**
 * A process's threads as Linux shows them under /proc/PID/task: each thread's name (comm, as the
 * runtime set it: Bun's workers are "Worker", JavaScriptCore's JIT threads "JITWorker") and its
 * scheduler statistics (schedstat: nanoseconds on a CPU, nanoseconds runnable but waiting for one,
 * timeslices run). Elsewhere there is no such account: an empty list.
 */
import { readdirSync, readFileSync } from "node:fs";

/** The name Bun gives a Worker's thread. */
export const WORKER_THREAD = "Worker";

export interface ThreadStat {
  tid: number;
  name: string;
  /** Seconds on a CPU since the thread started. */
  onCpuSeconds: number;
  /** Seconds runnable but not running (waiting in a run queue). */
  waitSeconds: number;
  /** Timeslices run (a slice ends when the thread sleeps or is preempted). */
  slices: number;
}

/**
 * The threads of process `pid` (this one by default), with their statistics when `stats` (reading
 * them costs a file per thread). A thread that ends while it is read is left out.
 */
export function threadsOf(pid: number | "self" = "self", stats = true): ThreadStat[] {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const threads: ThreadStat[] = [];
  for (const tid of tids) {
    try {
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").trim();
      const [onCpu, wait, slices] = stats ? readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").trim().split(/\s+/).map(Number) : [0, 0, 0];
      threads.push({ tid: Number(tid), name, onCpuSeconds: onCpu! / 1e9, waitSeconds: wait! / 1e9, slices: slices! });
    } catch {
      // the thread ended meanwhile
    }
  }
  return threads;
}

/** The scheduling policy of thread `tid` of this process (field 41 of its stat line), or null if gone. */
export function schedulingPolicy(tid: number): number | null {
  try {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
    // Fields after the command name, which is in parentheses and may hold spaces: state is field 3.
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[41 - 3]);
  } catch {
    return null;
  }
}
