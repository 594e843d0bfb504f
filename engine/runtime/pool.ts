/**
 * The threaded executor's main side: workers created once per run, each instantiating the kernel
 * module on the shared memory; role programs started over comlink.
 *
 * A worker that throws, dies or never starts ends the run with one clear error, never a hang:
 * every call races the worker's death, start-up has a deadline, and on the first failure the stop
 * flag wakes every peer blocked in a barrier so the others return promptly. A worker that neither
 * fails nor returns (a kernel spinning, a lost message) is caught by a watchdog on every call: when
 * nothing moves — no sample counted, no barrier passed, no worker returning — for `stallMs`, the run
 * ends naming the workers still out and the call they have not returned from.
 */
import * as Comlink from "comlink";
import { RunError, WatchdogError } from "../errors.ts";
import { WORD, type Control } from "./control.ts";
import type { RunSetup } from "./context.ts";
import type { FaultPlan } from "./fault.ts";
import type { Executor } from "./executor.ts";
import type { RoleArgs } from "./roles.ts";
import type { WorkerApi } from "./worker-api.ts";
import type { PrefaultSpec, WarmUpReport, WarmUpSpec } from "./warm-up.ts";
import { holdCompilerIdle, refreshCompilerIdle, releaseCompilerIdle } from "./compiler-threads.ts";

/** Where the worker entry is: next to the sources, or handed in by the single binary. */
let workerEntry: string | URL = new URL("../../workers/worker.ts", import.meta.url);
export function setWorkerEntry(entry: string | URL): void {
  workerEntry = entry;
}

const START_TIMEOUT_MS = 15_000;
/** After a failure, how long peers get to notice the stop flag before being terminated anyway. */
const STOP_GRACE_MS = 1_000;
/**
 * How long a call may go without any sign of progress before the run is declared stuck. Longer than
 * the workers' own barrier timeout (they report a missing peer themselves first) and than any one
 * batch or evaluation shard takes on a CPU.
 */
export const DEFAULT_STALL_MS = 300_000;

interface Member {
  worker: Worker;
  api: Comlink.Remote<WorkerApi>;
  died: Promise<never>;
}

/** What a pool starts its workers on: the run's module, memory, setup and control words. */
export interface PoolStart {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  setup: RunSetup;
  control: Control;
  fault?: FaultPlan | null;
  /** How long a call may show no progress before the run is declared stuck (default DEFAULT_STALL_MS). */
  stallMs?: number;
  /** The first program this pool runs (a process of a run that spans processes hosts programs first … first + count − 1). */
  first?: number;
  /** Run the process's JIT compiler threads at idle priority while this pool lives (see idleCompilerFor). */
  idleCompiler?: boolean;
}

export class WorkerPool implements Executor {
  /** Whether this pool holds the compiler threads at idle priority (released once, on terminate). */
  private holdsCompiler = false;

  private constructor(
    private readonly members: Member[],
    private readonly control: Control,
    private readonly stallMs: number,
    private readonly first: number,
  ) {}

  static start(count: number, start: PoolStart): Promise<WorkerPool> {
    return WorkerPool.launch(count).start(start);
  }

  /**
   * Create the workers now and start them later: their threads load their code while the caller
   * prepares the run, and one of them may warm the kernels up meanwhile (see PoolLaunch).
   */
  static launch(count: number): PoolLaunch {
    return new PoolLaunch(Array.from({ length: count }, spawn));
  }

  /** @internal PoolLaunch.start: start the launched workers on the run's memory. */
  static async startMembers(members: Member[], start: PoolStart): Promise<WorkerPool> {
    const { module, memory, setup, control, fault = null, stallMs = DEFAULT_STALL_MS, first = 0 } = start;
    const pool = new WorkerPool(members, control, stallMs, first);
    try {
      await pool.all(
        (m, w) => m.api.init(module, memory, setup, first + w, fault),
        START_TIMEOUT_MS,
        "start",
      );
      if (start.idleCompiler) pool.holdsCompiler = await holdCompilerIdle();
    } catch (e) {
      pool.terminate();
      throw e;
    }
    return pool;
  }

  get size(): number {
    return this.members.length;
  }

  /** Run a role program on every worker (args per worker) and collect their results in worker order. */
  run<R>(role: string, args: (worker: number) => RoleArgs): Promise<R[]> {
    if (this.holdsCompiler) refreshCompilerIdle();
    return this.all((m, w) => m.api.run(role, args(this.first + w)) as Promise<R>, 0, role);
  }

  private async all<R>(call: (m: Member, w: number) => Promise<R>, timeoutMs: number, what: string): Promise<R[]> {
    let firstFailure: RunError | null = null;
    let firstIsConsequence = false;
    const pending = new Set(this.members.map((_, w) => w));
    const settled = this.members.map((m, w) =>
      Promise.race([call(m, w), m.died])
        .catch((e: unknown) => {
          const err = describeFailure(e, this.first + w, what);
          // A peer's "stopped" is a consequence, not the cause: report the first real failure. (comlink
          // carries a thrown error's name across the thread boundary, not its class.)
          const consequence = (e as Error)?.name === "StopRequested";
          if (!firstFailure || (firstIsConsequence && !consequence)) [firstFailure, firstIsConsequence] = [err, consequence];
          this.control.requestStop();
          throw err;
        })
        .finally(() => pending.delete(w)),
    );
    const everything = Promise.all(settled);
    const timers: ReturnType<typeof setTimeout>[] = [];
    const deadline = new Promise<never>((_, reject) => {
      if (timeoutMs > 0) timers.push(setTimeout(() => reject(new RunError(`workers did not ${what} within ${timeoutMs / 1000} s`)), timeoutMs));
      // The watchdog: any movement of the shared progress words, or a worker returning, resets it.
      const progress = () =>
        `${this.control.samplesDone()}/${this.control.read(WORD.barrierGeneration)}/${this.control.read(WORD.claimNext)}/${this.control.read(WORD.evaluateNext)}/${pending.size}`;
      let seen = progress();
      let since = Date.now();
      const tick = setInterval(() => {
        const now = progress();
        if (now !== seen) [seen, since] = [now, Date.now()];
        else if (Date.now() - since >= this.stallMs) {
          const out = [...pending].map((w) => `worker ${this.first + w}`).join(", ");
          reject(new WatchdogError(`stuck: ${out} made no progress in ${what} for ${(this.stallMs / 1000).toFixed(1)} s (waiting for ${pending.size === 1 ? "its" : "their"} ${what} call to return)`));
        }
      }, Math.max(10, Math.min(1000, this.stallMs / 4)));
      timers.push(tick as unknown as ReturnType<typeof setTimeout>);
    });
    try {
      return await Promise.race([everything, deadline]);
    } catch (e) {
      this.control.requestStop();
      // Give the peers a moment to see the stop flag and return, so the error we report is the root cause.
      await Promise.race([Promise.allSettled(settled), sleep(STOP_GRACE_MS)]);
      throw firstFailure && !(firstIsConsequence && e instanceof WatchdogError) ? firstFailure : e;
    } finally {
      for (const t of timers) clearInterval(t);
    }
  }

  terminate(): void {
    if (this.holdsCompiler) releaseCompilerIdle();
    this.holdsCompiler = false;
    for (const m of this.members) {
      m.api[Comlink.releaseProxy]();
      m.worker.terminate();
    }
  }
}

/**
 * Workers created but not started on a run yet. `warmUp` has the first worker free warm the kernel
 * module up on a memory of its own; `start` queues each worker's start behind that; `endWarmUp` (the caller's
 * start-up is done) ends the warm-up before its next gradient, so it fills only time the caller
 * spends on its own start-up. A warm-up is best-effort: its failure is left for the start to report if it matters.
 */
export class PoolLaunch {
  /** [stop, claimed]: see warmUp in warm-up.ts. */
  private readonly words = new Int32Array(new SharedArrayBuffer(8));
  /** The warm-up's report, once asked for (tests and diagnostics read it): the worker that warmed's, else null. */
  warming: Promise<WarmUpReport | null> = Promise.resolve(null);

  private starting: Promise<WorkerPool> | null = null;

  constructor(private readonly members: Member[]) {}

  warmUp(module: WebAssembly.Module, spec: WarmUpSpec, run: PrefaultSpec | null = null): void {
    const reports = this.members.map((m) => Promise.race([m.api.warmUp(module, spec, this.words, run), m.died]).catch(() => null));
    this.warming = Promise.all(reports).then((rs) => rs.find((r) => r !== null && r.calls > 0) ?? null);
  }

  endWarmUp(): void {
    Atomics.store(this.words, 0, 1);
  }

  start(start: PoolStart): Promise<WorkerPool> {
    this.starting ??= WorkerPool.startMembers(this.members, start);
    return this.starting;
  }

  /**
   * The caller's start-up failed: end the workers, whether or not they were started (a started pool
   * is ended once its start settles; a failed start has ended it already).
   */
  abandon(): void {
    this.endWarmUp();
    if (this.starting) {
      this.starting.then((pool) => pool.terminate(), () => {});
      return;
    }
    for (const m of this.members) {
      m.api[Comlink.releaseProxy]();
      m.worker.terminate();
    }
  }
}

function spawn(): Member {
  const worker = new Worker(workerEntry);
  const died = new Promise<never>((_, reject) => {
    worker.addEventListener("error", (e: ErrorEvent) => reject(new Error(e.message || "worker crashed")));
    worker.addEventListener("close", () => reject(new Error("worker exited")));
  });
  died.catch(() => {}); // observed through races only
  return { worker, api: Comlink.wrap<WorkerApi>(worker), died };
}

function describeFailure(e: unknown, worker: number, what: string): RunError {
  const message = e instanceof Error ? e.message : String(e);
  return new RunError(`worker ${worker} failed during ${what}: ${message.split("\n")[0]}`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
