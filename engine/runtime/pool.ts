/**
 * The threaded executor's main side: workers created once per run, each instantiating the kernel
 * module on the shared memory; role programs started over comlink.
 *
 * A worker that throws, dies or never starts ends the run with one clear error, never a hang:
 * every call races the worker's death, start-up has a deadline, and on the first failure the stop
 * flag wakes every peer blocked in a barrier so the others return promptly.
 */
import * as Comlink from "comlink";
import { RunError } from "../errors.ts";
import type { Control } from "./control.ts";
import type { RunSetup } from "./context.ts";
import type { FaultPlan } from "./fault.ts";
import type { Executor } from "./executor.ts";
import type { RoleArgs } from "./roles.ts";
import type { WorkerApi } from "./worker-api.ts";

/** Where the worker entry is: next to the sources, or handed in by the single binary. */
let workerEntry: string | URL = new URL("../../workers/worker.ts", import.meta.url);
export function setWorkerEntry(entry: string | URL): void {
  workerEntry = entry;
}

const START_TIMEOUT_MS = 15_000;
/** After a failure, how long peers get to notice the stop flag before being terminated anyway. */
const STOP_GRACE_MS = 1_000;

interface Member {
  worker: Worker;
  api: Comlink.Remote<WorkerApi>;
  died: Promise<never>;
}

export class WorkerPool implements Executor {
  private constructor(
    private readonly members: Member[],
    private readonly control: Control,
  ) {}

  static async start(
    count: number,
    module: WebAssembly.Module,
    memory: WebAssembly.Memory,
    setup: RunSetup,
    control: Control,
    fault: FaultPlan | null = null,
  ): Promise<WorkerPool> {
    const members = Array.from({ length: count }, spawn);
    const pool = new WorkerPool(members, control);
    try {
      await pool.all(
        (m, w) => m.api.init(module, memory, setup, w, fault),
        START_TIMEOUT_MS,
        "start",
      );
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
    return this.all((m, w) => m.api.run(role, args(w)) as Promise<R>, 0, role);
  }

  private async all<R>(call: (m: Member, w: number) => Promise<R>, timeoutMs: number, what: string): Promise<R[]> {
    let firstFailure: RunError | null = null;
    const settled = this.members.map((m, w) =>
      Promise.race([call(m, w), m.died]).catch((e: unknown) => {
        const err = describeFailure(e, w, what);
        // A peer's "stopped" is a consequence, not the cause: report the first real failure.
        if (!firstFailure || firstFailure instanceof StoppedByPeer) firstFailure = err;
        this.control.requestStop();
        throw err;
      }),
    );
    const everything = Promise.all(settled);
    const timers: ReturnType<typeof setTimeout>[] = [];
    const deadline =
      timeoutMs > 0
        ? new Promise<never>((_, reject) => {
            timers.push(setTimeout(() => reject(new RunError(`workers did not ${what} within ${timeoutMs / 1000} s`)), timeoutMs));
          })
        : null;
    try {
      return await (deadline ? Promise.race([everything, deadline]) : everything);
    } catch (e) {
      this.control.requestStop();
      // Give the peers a moment to see the stop flag and return, so the error we report is the root cause.
      await Promise.race([Promise.allSettled(settled), sleep(STOP_GRACE_MS)]);
      throw firstFailure ?? e;
    } finally {
      for (const t of timers) clearTimeout(t);
    }
  }

  terminate(): void {
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

/** A worker that returned because the stop flag was raised: a consequence of a failure, not its cause. */
class StoppedByPeer extends RunError {}

function describeFailure(e: unknown, worker: number, what: string): RunError {
  const message = e instanceof Error ? e.message : String(e);
  // comlink carries a thrown error's name across the thread boundary, not its class.
  const Kind = e instanceof Error && e.name === "StopRequested" ? StoppedByPeer : RunError;
  return new Kind(`worker ${worker} failed during ${what}: ${message.split("\n")[0]}`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
