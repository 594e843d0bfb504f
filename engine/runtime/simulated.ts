/**
 * The simulated executor: the deterministic executor's cooperative programs, each with a virtual
 * clock. A discrete-event simulation of P programs on P cores (or on a machine of fewer cores), run in
 * one thread:
 *
 *  - every kernel call advances the calling program's clock by its cost in the cost table (a function
 *    of the call's arguments), plus what its operands cost to fetch when its program has not touched
 *    them for a while (cache-model.ts), times the machine's slowdown for the programs computing at once;
 *  - while every core computes, the process's other threads (compiler, garbage collector) take their
 *    measured time from the programs, a timeslice at a time (costs.ts, helperLoad);
 *  - messages an algorithm declares (`sync.send`, `sync.allReduce`) cost latency + bytes/bandwidth;
 *  - the scheduler always advances the runnable program with the smallest clock, ties broken by a
 *    seeded generator; a program runs until its next synchronisation point;
 *  - a program that waits resumes at the virtual time of the event that released it (the last arrival
 *    at a barrier, the wake that changed the word it waits on), plus the machine's wake-up latency.
 *
 * The numerics are the real ones: the programs are the very generators the threads run, interleaved in
 * virtual-time order. A step runs at once, at its start clock in that order, so what it does to shared
 * memory after a kernel would be seen early by programs whose clocks are behind; programs yield at
 * `sync.virtualPoint()` between computing and writing what others read unsynchronised, and so every
 * read of stale weights follows virtual time. Same seed, cost table, machine and network → bitwise
 * the same weights and the same virtual times, on any machine.
 */
import { roleOf, withRunFacts, type RoleArgs, type RoleTable } from "./roles.ts";
import { SpanRecorder } from "./trace.ts";
import { newKernelTimer, wrapKernels } from "./kernel-timer.ts";
import type { KernelExports } from "../kernels/abi.ts";
import { instantiateKernels } from "../kernels/load.ts";
import { Network } from "../model/network.ts";
import { Rng } from "../rng.ts";
import { Control, StopRequested } from "./control.ts";
import type { RoleContext, RunSetup } from "./context.ts";
import { injectFault, type FaultPlan } from "./fault.ts";
import type { Executor, VirtualClock } from "./executor.ts";
import type { Blocked, RoleProgram, Sync } from "./sync.ts";
import { RunError } from "../errors.ts";
import { advance } from "./deterministic.ts";
import { allReduceSeconds, callSecondsFor, helperSecondsFor, kernelCostFunction, slowdown, streamedBytesFunction, trafficSeconds, warmCurves, type SimulationModel } from "./costs.ts";
import { CacheTracker } from "./cache-model.ts";
import { ProcessNetwork } from "./process-network.ts";

/** When a blocked program can resume: a virtual time, or null while its condition does not hold. */
type ResumeTime = () => number | null;

/** Wakes remembered per word: enough to find the one that released any waiter still asleep. */
const WAKE_HISTORY = 32;

/** The simulation's shared state: one thread, so plain fields are enough. */
export class SimulationState {
  /** Virtual seconds per program. */
  readonly clocks: Float64Array;
  /** Per program: null while runnable, else when it can resume. */
  readonly blocked: (ResumeTime | null)[];
  /** Slowdown of kernels in the step being run (programs computing at once, see costs.slowdown). */
  factor = 1;
  /** Seconds around each kernel call in the step being run (costs.callSecondsFor the programs computing). */
  callSeconds = 0;
  /** Helper-thread seconds that come due per second of a kernel in the step being run (costs.helperSecondsFor). */
  helperSeconds = 0;
  /** Helper-thread seconds due and not yet taken from a program (less than one timeslice). */
  helperDue = 0;
  /** Kernel calls charged so far (calibration fits the time around each call from it). */
  kernelCalls = 0;
  // The barrier: arrivals of the current generation, the latest arrival time, the last release.
  arrived = 0;
  generation = 0;
  latestArrival = 0;
  releasedAt = 0;
  /** Per i32 word index: recent wakes as (value after the wake, virtual time), oldest first. */
  private readonly wakes = new Map<number, number[]>();

  constructor(readonly programs: number) {
    this.clocks = new Float64Array(programs);
    this.blocked = new Array(programs).fill(null);
  }

  recordWake(index: number, valueAfter: number, time: number): void {
    let h = this.wakes.get(index);
    if (!h) this.wakes.set(index, (h = []));
    h.push(valueAfter, time);
    if (h.length > 2 * WAKE_HISTORY) h.splice(0, 2);
  }

  /**
   * The virtual time of the wake that moved word `index` away from `seen`: the latest wake that made it
   * seen + 1 (waits are on counters bumped by one; a flag its owner stores back to 0, as sync's block
   * lines are every step, goes 0 → 1 again and again, and only the latest was this wait's), else the
   * latest remembered one.
   */
  releaseOf(index: number, seen: number): number {
    const h = this.wakes.get(index);
    if (!h) return 0;
    for (let i = h.length - 2; i >= 0; i -= 2) if (h[i] === seen + 1) return h[i + 1]!;
    return h[h.length - 1]!;
  }

  /** The virtual time at which word `index` got `value` (0 when no remembered wake made it). */
  madeAt(index: number, value: number): number {
    const h = this.wakes.get(index);
    if (!h) return 0;
    for (let i = h.length - 2; i >= 0; i -= 2) if (h[i] === value) return h[i + 1]!;
    return 0;
  }

  /** The virtual time of the latest wake of word `index` (0 if none). */
  lastWake(index: number): number {
    const h = this.wakes.get(index);
    return h ? h[h.length - 1]! : 0;
  }
}

/** The simulated executor's Sync: waits block in virtual time; messages cost what the network says. */
export class SimulatedSync implements Sync {
  waitedMs = 0;
  private readonly all: Int32Array;

  constructor(
    private readonly state: SimulationState,
    private readonly me: number,
    private readonly parties: number,
    private readonly control: Control,
    private readonly model: SimulationModel,
    memory: WebAssembly.Memory,
    /** Programs placed on processes: only messages between processes cost network time. */
    private readonly placed: ProcessNetwork | null = null,
  ) {
    this.all = new Int32Array(memory.buffer);
  }

  /** This program's virtual time, seconds. */
  get now(): number {
    return this.state.clocks[this.me]!;
  }

  /**
   * Advance this program's clock by `seconds` of computation (slowed by the programs computing with
   * it), and by a timeslice of the helper threads when one comes due meanwhile: their time comes due
   * as the programs compute and is taken from the program on the core when it does (a preempted
   * thread's kernel takes longer), so programs that meet at a barrier all wait for that one.
   */
  compute(seconds: number): void {
    const s = this.state;
    const busy = seconds * s.factor;
    s.clocks[this.me]! += busy;
    if (s.helperSeconds > 0 && (s.helperDue += s.helperSeconds * busy) >= this.model.table.helperSliceSeconds) {
      s.helperDue -= this.model.table.helperSliceSeconds;
      s.clocks[this.me]! += this.model.table.helperSliceSeconds;
    }
  }

  *barrier(): Generator<Blocked, void, void> {
    this.checkStop();
    const s = this.state;
    const generation = s.generation;
    s.latestArrival = s.arrived === 0 ? this.now : Math.max(s.latestArrival, this.now);
    if (++s.arrived === this.parties) {
      s.arrived = 0;
      s.generation++;
      s.releasedAt = s.latestArrival;
      this.resumeAt(s.releasedAt, false);
      return;
    }
    yield* this.block(() => (s.generation !== generation ? s.releasedAt : null), "barrier");
  }

  *waitChange(word: number, seen: number, what: string): Generator<Blocked, void, void> {
    const index = word >> 2;
    const s = this.state;
    if (Atomics.load(this.all, index) !== seen) {
      // Already changed, but perhaps by a program whose step ran ahead of this one in virtual time.
      this.resumeAt(s.releaseOf(index, seen), false);
      return;
    }
    yield* this.block(() => (Atomics.load(this.all, index) !== seen ? s.releaseOf(index, seen) : null), what);
  }

  wake(word: number): void {
    const index = word >> 2;
    // Whoever bumps a word has read it: not before the wake that gave it its value (a queue's pop after
    // the push that filled it, a layer's turn after the previous holder's).
    this.resumeAt(this.state.lastWake(index), false);
    const after = Atomics.add(this.all, index, 1) + 1;
    this.state.recordWake(index, after, this.now);
  }

  observe(word: number): void {
    const index = word >> 2;
    this.resumeAt(this.state.madeAt(index, Atomics.load(this.all, index)), false);
  }

  *point(): Generator<Blocked, void, void> {
    yield { waitingFor: "nothing (scheduling point)" };
    this.checkStop();
  }

  /** The smallest clock runs next: programs behind this one's clock run their steps before it goes on. */
  *virtualPoint(): Generator<Blocked, void, void> {
    yield { waitingFor: "nothing (virtual-time point)" };
    this.checkStop();
  }

  send(bytes: number, messages = 1, to?: readonly number[]): void {
    const n = this.model.network;
    if (this.placed) this.placed.charge(this.state.clocks, n, this.me, bytes, messages, to);
    else this.state.clocks[this.me]! += trafficSeconds(n, bytes, messages);
  }

  allReduce(bytes: number, parties: number): void {
    this.state.clocks[this.me]! += allReduceSeconds(this.model.network, bytes, parties);
  }

  checkStop(): void {
    if (this.control.stopRequested) throw new StopRequested("stopped because a peer failed");
  }

  /** Yield until `when` gives a time, then continue from it (and pay the wake-up). */
  private *block(when: ResumeTime, what: string): Generator<Blocked, void, void> {
    const s = this.state;
    s.blocked[this.me] = when;
    try {
      for (;;) {
        yield { waitingFor: what };
        this.checkStop();
        const t = when();
        if (t !== null) return this.resumeAt(t, true);
      }
    } finally {
      s.blocked[this.me] = null;
    }
  }

  /** Never before the releasing event: a clock only moves forward. */
  private resumeAt(releasedAt: number, slept: boolean): void {
    const from = this.now;
    const to = Math.max(from, releasedAt + (slept ? this.model.table.wakeSeconds : 0));
    this.state.clocks[this.me] = to;
    this.waitedMs += (to - from) * 1000;
  }
}

export class SimulatedExecutor implements Executor {
  private readonly contexts: RoleContext[];
  private readonly syncs: SimulatedSync[];
  private readonly state: SimulationState;
  readonly clock: VirtualClock = { lastRunSeconds: 0, totalSeconds: 0 };

  constructor(
    module: WebAssembly.Module,
    memory: WebAssembly.Memory,
    setup: RunSetup,
    control: Control,
    private readonly roles: RoleTable,
    private readonly seed: number,
    readonly model: SimulationModel,
    fault: FaultPlan | null = null,
    /** Processes the programs are placed on (contiguous shares); null: every program its own host. */
    procs: number | null = null,
  ) {
    const placed = procs === null ? null : new ProcessNetwork(setup.programs, procs, model.machine === "ideal" ? Infinity : model.table.machine.cores);
    const k = instantiateKernels(module, memory);
    const net = new Network(setup.model, setup.inputShape, setup.classes);
    const state = (this.state = new SimulationState(setup.programs));
    const costs = new Map<string, (args: unknown[]) => number>();
    const streamed = new Map<string, (args: number[]) => number>();
    // The time around each call is charged per step by how many programs compute (callSecondsFor).
    const kernelsOnly = { ...model.table, callSeconds: 0 };
    for (const name of Object.keys(k)) {
      costs.set(name, kernelCostFunction(kernelsOnly, name));
      streamed.set(name, streamedBytesFunction(name));
    }
    // Operands a program has not touched for a while come from further away than calibration had them.
    const cache = new CacheTracker(model.table.memory, setup.plan, memory, warmCurves(model.table));
    this.syncs = [];
    this.contexts = Array.from({ length: setup.programs }, (_, worker) => {
      if (fault?.worker === worker && fault.at === "init") throw new RunError(`worker ${worker} failed during start: injected fault at start-up of worker ${worker}`);
      const sync = new SimulatedSync(state, worker, setup.programs, control, model, memory, placed);
      this.syncs.push(sync);
      const kernelTimer = setup.profileKernels ? newKernelTimer() : null;
      const spread = jitterOf(model.table.jitter ?? 0, Rng.derive(seed, "kernel jitter", worker));
      // The clock advances by the call's cost; a profiled run's kernel time is that virtual time too.
      const charged = wrapKernels(fault?.worker === worker ? injectFault(k, fault) : k, (name, call, args) => {
        const before = state.clocks[worker]!;
        state.kernelCalls++;
        const a = args as number[];
        sync.compute((costs.get(name)!(args) + cache.extraSeconds(name, a, streamed.get(name)!(a), worker)) * spread());
        if (kernelTimer) {
          const ms = (state.clocks[worker]! - before) * 1000;
          kernelTimer.ms += ms;
          kernelTimer.byName[name] = (kernelTimer.byName[name] ?? 0) + ms;
        }
        state.clocks[worker]! += state.callSeconds; // outside the kernel, as a profiled thread counts it
        return call();
      });
      const trace = setup.trace ? new SpanRecorder(() => state.clocks[worker]! * 1e6) : null;
      return { k: charged as KernelExports, memory, net, setup, worker, control, sync, kernelTimer, trace };
    });
  }

  get size(): number {
    return this.contexts.length;
  }

  /** Kernel calls charged since the executor started. */
  get kernelCalls(): number {
    return this.state.kernelCalls;
  }

  /** Virtual seconds of every program (tests: time never runs backwards). */
  clocks(): Float64Array {
    return this.state.clocks.slice();
  }

  async run<R>(role: string, args: (worker: number) => RoleArgs): Promise<R[]> {
    // Seeded as the deterministic executor's interleaving: by the seed and the call's arguments.
    const rng = Rng.derive(this.seed, "scheduler", ...Object.keys(args(0)), ...Object.values(args(0)));
    const { state } = this;
    // Every program starts the call together, when the last one finished the previous call.
    const start = Math.max(0, ...state.clocks);
    state.clocks.fill(start);
    const before = this.contexts.map((ctx) => ctx.kernelTimer?.ms ?? 0);
    const waitedBefore = this.syncs.map((s) => s.waitedMs);
    const program = roleOf(this.roles, role);
    const programs = this.contexts.map((ctx) => program(ctx, args(ctx.worker)));
    const ended = new Float64Array(programs.length);
    const results = simulate(programs, state, this.model, rng, role, ended);
    // Handing the call to the threads and collecting their results.
    const end = Math.max(start, ...ended) + this.model.table.runSeconds;
    state.clocks.fill(end);
    this.clock.lastRunSeconds = end - start;
    this.clock.totalSeconds = end;
    return results.map((r, w) => {
      const facts = withRunFacts(this.contexts[w]!, r, before[w]!);
      if (typeof facts !== "object" || facts === null || !("elapsedMs" in facts)) return facts;
      // In virtual time: what the program measured on the wall clock means nothing here.
      return { ...facts, elapsedMs: (ended[w]! - start) * 1000, waitedMs: this.syncs[w]!.waitedMs - waitedBefore[w]! };
    }) as R[];
  }

  terminate(): void {}
}

/**
 * Factors of mean 1 and relative spread `jitter` (uniform on 1 ± √3·jitter: bounded, so a cost never
 * turns negative), from `rng`; exactly 1 without jitter.
 */
function jitterOf(jitter: number, rng: Rng): () => number {
  if (jitter === 0) return () => 1;
  const width = Math.min(Math.sqrt(3) * jitter, 0.99);
  return () => 1 + width * (2 * rng.nextFloat() - 1);
}

/**
 * Advance the runnable program with the smallest clock (ties: seeded) to its next yield until all are
 * done; `ended[i]` gets program i's clock when it returned. A step's kernels are slowed by the number
 * of programs computing at its start in virtual time: the runnable ones, and the blocked ones whose
 * clock is past it (they were still computing then). When no program can run, it is a deadlock.
 */
export function simulate<R>(programs: RoleProgram<R>[], state: SimulationState, model: SimulationModel, rng: Rng, what: string, ended: Float64Array): R[] {
  const results = new Array<R>(programs.length);
  const live = programs.map((_, i) => i);
  const waiting = new Array<string>(programs.length).fill("");
  const ties: number[] = [];
  while (live.length > 0) {
    let best = Infinity;
    let runnable = 0;
    ties.length = 0;
    for (const i of live) {
      const when = state.blocked[i];
      const t = when ? when() : state.clocks[i]!;
      if (t === null) continue;
      runnable++;
      // A resumed program continues from its release, which may lie behind its own clock.
      const key = Math.max(t, state.clocks[i]!);
      if (key < best) {
        best = key;
        ties.length = 0;
        ties.push(i);
      } else if (key === best) ties.push(i);
    }
    if (ties.length === 0) {
      throw new RunError(`deadlock: programs ${live.join(", ")} all wait (${live.map((i) => waiting[i]).join("; ")}) and none can proceed`);
    }
    const index = ties.length === 1 ? ties[0]! : ties[rng.int(ties.length)]!;
    // Computing at `best`: the runnable programs, and the blocked ones that blocked later than it.
    let computing = runnable;
    for (const i of live) if (state.blocked[i] && state.clocks[i]! > best && state.blocked[i]!() === null) computing++;
    state.factor = slowdown(model, computing);
    state.callSeconds = callSecondsFor(model, computing, what);
    state.helperSeconds = helperSecondsFor(model, computing);
    const step = advance(programs, index, what);
    if (step.done) {
      results[index] = step.value;
      ended[index] = state.clocks[index]!;
      live.splice(live.indexOf(index), 1);
    } else {
      waiting[index] = step.value.waitingFor;
    }
  }
  return results;
}
