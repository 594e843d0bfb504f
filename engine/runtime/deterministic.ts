/**
 * The deterministic executor: every role program of a run interleaved in one thread, the next one to
 * advance chosen by a seeded scheduler at each synchronisation point. Same seed → same interleaving →
 * bitwise the same weights, whatever the machine; tests drive the seed to explore interleavings.
 *
 * Programs are the very generators the threaded executor runs; only `Sync` differs: a barrier here
 * yields to the scheduler until every party has arrived, instead of blocking a thread.
 */
import { roleOf, withRunFacts, type RoleArgs, type RoleTable } from "./roles.ts";
import { SpanRecorder } from "./trace.ts";
import { newKernelTimer, timeKernels } from "./kernel-timer.ts";
import type { KernelExports } from "../kernels/abi.ts";
import { instantiateKernels } from "../kernels/load.ts";
import { Network } from "../model/network.ts";
import { Rng } from "../rng.ts";
import { Control, StopRequested } from "./control.ts";
import type { RoleContext, RunSetup } from "./context.ts";
import { injectFault, type FaultPlan } from "./fault.ts";
import type { Executor } from "./executor.ts";
import type { Blocked, RoleProgram, Sync } from "./sync.ts";
import { RunError } from "../errors.ts";

/** Shared by the cooperative programs: one thread, so plain fields are enough. */
export interface SchedulerState {
  arrived: number;
  generation: number;
  /** Events that prove some program moved (arrivals, wakes, scheduling points): deadlock evidence. */
  progress: number;
}

/** The deterministic executor's Sync: waits yield to the scheduler instead of blocking a thread. */
export class CooperativeSync implements Sync {
  readonly waitedMs = 0;
  private readonly all: Int32Array;

  constructor(
    private readonly state: SchedulerState,
    private readonly parties: number,
    private readonly control: Control,
    memory: WebAssembly.Memory,
  ) {
    this.all = new Int32Array(memory.buffer);
  }

  *barrier(): Generator<Blocked, void, void> {
    this.checkStop();
    const s = this.state;
    const generation = s.generation;
    s.progress++;
    if (++s.arrived === this.parties) {
      s.arrived = 0;
      s.generation++;
      return;
    }
    while (s.generation === generation) {
      yield { waitingFor: "barrier" };
      this.checkStop();
    }
  }

  *waitChange(word: number, seen: number, what: string): Generator<Blocked, void, void> {
    while (Atomics.load(this.all, word >> 2) === seen) {
      yield { waitingFor: what };
      this.checkStop();
    }
  }

  wake(word: number): void {
    Atomics.add(this.all, word >> 2, 1);
    this.state.progress++;
  }

  *point(): Generator<Blocked, void, void> {
    this.state.progress++;
    yield { waitingFor: "nothing (scheduling point)" };
    this.checkStop();
  }

  /** Not a switch here: the interleavings stay those of the points, and there is no time to order. */
  *virtualPoint(): Generator<Blocked, void, void> {}

  checkStop(): void {
    if (this.control.stopRequested) throw new StopRequested("stopped because a peer failed");
  }

  observe(): void {}

  send(): void {}

  allReduce(): void {}
}

/** Blocked yields in a row, across all programs, after which the run is declared deadlocked. */
const DEADLOCK_LIMIT = 100_000;

export class DeterministicExecutor implements Executor {
  private readonly contexts: RoleContext[];
  private readonly progress: () => number;

  constructor(
    module: WebAssembly.Module,
    memory: WebAssembly.Memory,
    setup: RunSetup,
    control: Control,
    private readonly roles: RoleTable,
    private readonly seed: number,
    fault: FaultPlan | null = null,
  ) {
    // One instance serves every logical worker: kernels keep no state, so sharing it is exact.
    const k = instantiateKernels(module, memory);
    const net = new Network(setup.model, setup.inputShape, setup.classes);
    const state: SchedulerState = { arrived: 0, generation: 0, progress: 0 };
    this.progress = () => state.progress;
    this.contexts = Array.from({ length: setup.programs }, (_, worker) => {
      if (fault?.worker === worker && fault.at === "init") throw new RunError(`worker ${worker} failed during start: injected fault at start-up of worker ${worker}`);
      const kernelTimer = setup.profileKernels ? newKernelTimer() : null;
      let kw: KernelExports = fault?.worker === worker ? injectFault(k, fault) : k;
      if (kernelTimer) kw = timeKernels(kw, kernelTimer);
      return { k: kw, memory, net, setup, worker, control, sync: new CooperativeSync(state, setup.programs, control, memory), kernelTimer, trace: setup.trace ? new SpanRecorder() : null };
    });
  }

  get size(): number {
    return this.contexts.length;
  }

  async run<R>(role: string, args: (worker: number) => RoleArgs): Promise<R[]> {
    // Each call's interleaving depends only on the seed and the call's arguments (the epoch, or what
    // to evaluate): not on how many calls came before, so a resumed run replays the same
    // interleavings; and not on the role's name, so two algorithms that should agree (lap with one
    // replica and hogwild) can be compared under the very same interleaving.
    const rng = Rng.derive(this.seed, "scheduler", ...Object.keys(args(0)), ...Object.values(args(0)));
    const before = this.contexts.map((ctx) => ctx.kernelTimer?.ms ?? 0);
    const program = roleOf(this.roles, role);
    const programs = this.contexts.map((ctx) => program(ctx, args(ctx.worker)));
    const results = interleave(programs, rng, this.progress, role);
    return results.map((r, w) => withRunFacts(this.contexts[w]!, r, before[w]!)) as R[];
  }

  terminate(): void {}
}

/** Run program `index` to its next yield; a throw is that worker's failure, named. */
export function advance<R>(programs: RoleProgram<R>[], index: number, what: string): IteratorResult<Blocked, R> {
  try {
    return programs[index]!.next();
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    throw new RunError(`worker ${index} failed during ${what}: ${message.split("\n")[0]}`);
  }
}

/**
 * Advance a random live program to its next yield until all are done. `progress` counts events that
 * prove some program moved (arrivals, wakes, scheduling points); many yields without one mean a deadlock.
 */
export function interleave<R>(programs: RoleProgram<R>[], rng: Rng, progress: () => number, what = "run"): R[] {
  const results = new Array<R>(programs.length);
  const live = programs.map((_, i) => i);
  let blockedInARow = 0;
  let lastProgress = progress();
  while (live.length > 0) {
    const pick = rng.int(live.length);
    const index = live[pick]!;
    const step = advance(programs, index, what);
    if (step.done) {
      results[index] = step.value;
      live.splice(pick, 1);
      blockedInARow = 0;
    } else if (progress() !== lastProgress) {
      lastProgress = progress();
      blockedInARow = 0;
    } else if (++blockedInARow > DEADLOCK_LIMIT) {
      throw new RunError(`deadlock: programs ${live.join(", ")} all wait (${step.value.waitingFor}) and none can proceed`);
    }
  }
  return results;
}
