/**
 * JavaScriptCore's JIT compiler threads at idle priority while workers train.
 *
 * JavaScriptCore compiles hot JavaScript with its optimising tiers (DFG, FTL) on a few process-wide
 * threads named "JITWorker". Every worker is a VM of its own, so each compiles its own copy of the
 * role program, the barrier, the claim loop…: in a sync run of mlp:784-256-128-10 on 2 workers
 * (BUN_JSC_reportCompileTimes=true) about 100 ms of compilation landed after the first epoch, 45 ms of
 * it the two DFG compiles of the sync epoch generator. With as many workers as cores, each of those
 * milliseconds preempts a worker, and a synchronous step then waits for it: the workers spent about
 * 10% of the training window runnable but not running (/proc/PID/task/TID/schedstat), the JIT thread
 * being their largest competitor after the main thread's start-up.
 *
 * So while a pool runs programs that wait for each other every step (sync's barriers, a pipeline's
 * hand-offs, a gossip round's neighbours), and no more of them than cores, the process's JIT threads
 * run under SCHED_IDLE: the kernel gives them a core only when no other thread wants it, which such
 * programs leave every step when they sleep in a wait. Compilation then fills those moments and the
 * gaps between epochs; code waiting for it keeps running in the tier it is in, which for the role
 * programs costs little (the work is in WebAssembly kernels, compiled by separate threads this leaves
 * alone: a kernel held back in its baseline tier would cost ten times its time).
 *
 * Programs that never wait for each other (Hogwild! and the asynchronous family) leave no idle moment,
 * so an idle compiler would never run: their step functions, first compiled by DFG after the first
 * epoch, would stay in the baseline tier all run. Nor does a run with more programs than cores
 * (layer-wise's threads) leave one. Those keep the compiler at its normal policy. Measured on the
 * 2-core machine, separate 2-worker processes alternating on and off (pairs of `skein train --json`,
 * 8–10 epochs, bench/user-wall.ts): sync batch 128 1.08–1.12× (8 and 10 of 10 pairs faster in two
 * sets), batch 256 1.04–1.07× (the workers' runqueue wait 292 → 214 ms), pipedream on 2 stages
 * 1.03–1.06×, dmsgd 1.025× (4/6); held idle anyway, Hogwild! lost (0.96×, 4/12 faster) and layer-wise
 * too (0.97×, 2/6).
 *
 * Linux only (sched_setscheduler through libc); anywhere else, or where libc cannot be opened, it does
 * nothing. SKEIN_IDLE_COMPILER=0 turns it off (for measuring it against its absence).
 */
import { UserError } from "../errors.ts";
import { threadsOf } from "./thread-stats.ts";
import { CORES } from "./sync.ts";

const SCHED_OTHER = 0;
const SCHED_IDLE = 5;
/** The thread name (/proc/…/comm) JavaScriptCore gives its JIT worklist's threads. */
export const JIT_THREAD_NAME = "JITWorker";

/** Whether runs may idle the compiler: yes unless SKEIN_IDLE_COMPILER=0 (unset, empty or 1: yes). */
export function idleCompilerByDefault(value: string | undefined = process.env.SKEIN_IDLE_COMPILER): boolean {
  if (value === undefined || value === "" || value === "1") return true;
  if (value === "0") return false;
  throw new UserError(`SKEIN_IDLE_COMPILER=${value}: expected 0 or 1`);
}

/**
 * Whether a pool of `programs` on `cores` idles the compiler: two programs or more that wait for each
 * other every step, no more of them than cores, and SKEIN_IDLE_COMPILER not 0. (One program has no
 * peer to wait for: two such runs side by side would never leave the compiler a core.)
 */
export function idleCompilerFor(run: { programsWait: boolean; programs: number; cores?: number }, env?: string): boolean {
  return idleCompilerByDefault(env) && run.programsWait && run.programs >= 2 && run.programs <= (run.cores ?? CORES);
}

type SetScheduler = (tid: number, policy: number) => boolean;

let setScheduler: SetScheduler | null | undefined;

/** sched_setscheduler(tid, policy, {0}) from libc, or null where there is none to call. */
async function loadSetScheduler(): Promise<SetScheduler | null> {
  if (process.platform !== "linux") return null;
  try {
    const { dlopen, FFIType, ptr } = await import("bun:ffi");
    for (const name of ["libc.so.6", "libc.musl-x86_64.so.1", "libc.musl-aarch64.so.1"]) {
      try {
        const lib = dlopen(name, { sched_setscheduler: { args: [FFIType.i32, FFIType.i32, FFIType.ptr], returns: FFIType.i32 } });
        const param = new Int32Array(1); // struct sched_param { int sched_priority = 0 }
        return (tid, policy) => lib.symbols.sched_setscheduler(tid, policy, ptr(param)) === 0;
      } catch {
        // not this libc
      }
    }
  } catch {
    // no bun:ffi
  }
  return null;
}

/** The ids of this process's threads named `name`. */
export function threadsNamed(name: string): number[] {
  return threadsOf("self", false)
    .filter((t) => t.name === name)
    .map((t) => t.tid);
}

let holders = 0;
const idled = new Set<number>();

/**
 * A pool starts running workers: from now until every holder has released, the JIT threads (those
 * there now and any a later refreshCompilerIdle finds) run at idle priority. Returns false where it cannot.
 */
export async function holdCompilerIdle(): Promise<boolean> {
  if (setScheduler === undefined) setScheduler = await loadSetScheduler();
  if (!setScheduler) return false;
  holders++;
  refreshCompilerIdle();
  return true;
}

/** Idle JIT threads that appeared since the last look (cheap: a dozen reads of /proc). */
export function refreshCompilerIdle(): void {
  if (holders === 0 || !setScheduler) return;
  for (const tid of threadsNamed(JIT_THREAD_NAME)) if (!idled.has(tid) && setScheduler(tid, SCHED_IDLE)) idled.add(tid);
}

/** A holder is done; the last one gives the JIT threads their normal policy back. */
export function releaseCompilerIdle(): void {
  if (holders === 0 || !setScheduler) return;
  if (--holders > 0) return;
  // Back to SCHED_OTHER; an unprivileged process whose RLIMIT_NICE forbids it leaves them idle, which
  // costs nothing a CLI run would notice (the process ends with its run).
  for (const tid of idled) setScheduler(tid, SCHED_OTHER);
  idled.clear();
}
