/**
 * CPU seconds of processes and threads (Linux /proc): what the nats bench charges each process of a
 * transfer or a run across processes.
 */
import { readdirSync, readFileSync } from "node:fs";
import { procStatFields } from "../engine/distributed/main-thread.ts";

/** The pids of a process's children (Linux: /proc/PID/task/TID/children; none elsewhere). */
export function childrenOf(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((tid) => readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number));
  } catch {
    return [];
  }
}

/**
 * CPU seconds, while a run across processes lasts, of this process's main thread (rank 0's), the
 * follower's main thread and the nats-server: the descendants started during the run, sampled every
 * 100 ms (they are gone when it returns; the last 100 ms of a follower, sending its state and
 * exiting, may be missed).
 */
export function cpuSampler(): { stop(): { coordinator: number; follower: number; server: number } } {
  const descendants = (pid: number): number[] => childrenOf(pid).flatMap((c) => [c, ...descendants(c)]);
  const before = new Set(descendants(process.pid));
  const seen = new Map<number, { comm: string; main: number; total: number }>();
  const sample = () => {
    for (const pid of descendants(process.pid)) {
      if (before.has(pid)) continue;
      let comm = "";
      try {
        comm = readFileSync(`/proc/${pid}/comm`, "utf8").trim();
      } catch {
        continue;
      }
      const main = cpuSecondsOf(pid, pid);
      const total = cpuSecondsOf(pid);
      if (Number.isFinite(main) && Number.isFinite(total)) seen.set(pid, { comm, main, total });
    }
  };
  const main0 = cpuSecondsOf(process.pid, process.pid);
  const timer = setInterval(sample, 100);
  return {
    stop() {
      clearInterval(timer);
      sample();
      const of = (server: boolean) => [...seen.values()].filter((p) => p.comm.startsWith("nats-server") === server);
      return {
        coordinator: cpuSecondsOf(process.pid, process.pid) - main0,
        follower: of(false).reduce((a, p) => a + p.main, 0),
        server: of(true).reduce((a, p) => a + p.total, 0),
      };
    },
  };
}

/** User + system CPU seconds of a process (or of one of its threads) so far (Linux /proc; NaN elsewhere). */
export function cpuSecondsOf(pid: number, thread?: number): number {
  try {
    const fields = procStatFields(thread === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${thread}/stat`);
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (100 Hz)
  } catch {
    return NaN;
  }
}
