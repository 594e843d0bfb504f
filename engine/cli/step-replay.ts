/**
 * Training steps replayed on k threads at once: how fast this machine runs the kernels of a real
 * training step, alone and beside k − 1 others.
 *
 * Each thread replays the kernel calls of one training step per model (gather a batch, forward, loss,
 * backward, a momentum update of the shared parameters) on its own batch, workspace and gradients, as
 * the workers of a run do. Two things come out of it, both for the cost table:
 *
 *  - contention: throughput of k threads over one thread's. A pure multiply-add loop is the wrong
 *    probe for this: on the 2-vCPU development machine two copies of it reach 1.1–1.3× one copy, while
 *    two threads training reach 1.8–2× (their kernels wait on loads, which two hardware threads of a
 *    core overlap);
 *  - kernels in context: one thread's step time over the sum of the isolated kernel costs of its calls
 *    (each call of a step finds its operands evicted by the calls before it; a timing loop repeating
 *    one call does not).
 *
 * The same probe, run just before a threaded measurement, tells how fast the machine is at that moment
 * (on a shared host this drifts by tens of percent within a minute).
 */
import { Rng } from "../rng.ts";
import type { Ptr } from "../kernels/abi.ts";
import { instantiateKernels } from "../kernels/load.ts";
import { ArenaPlanner, createSharedMemory, f32, u8, type ArenaPlan } from "../memory/arena.ts";
import { Network } from "../model/network.ts";
import { wrapKernels } from "../runtime/kernel-timer.ts";
import { kernelCostFunction, streamedBytesFunction, warmCurves, type CostTable } from "../runtime/costs.ts";
import { CacheTracker } from "../runtime/cache-model.ts";

/** One kernel call: the export's name and its arguments. */
export type KernelCall = [name: string, args: number[]];

/** Rows of the replayed batch: the default batch of a run. */
export const REPLAY_ROWS = 64;

/**
 * Samples of the data set a gather reads from, at random as a shuffled epoch does (the digits'
 * training split has 8000): gathering the same few samples over and over finds them in cache and
 * times the gather 2–3× faster than a run sees it.
 */
export const DATA_SAMPLES = 8192;

/** A replay thread: instantiate, warm up, then run timed trials on request. */
const WORKER_CODE = `let fns, calls;
const step = (from, to) => { for (let i = from; i < to; i++) fns[i](...calls[i][1]); };
self.onmessage = (e) => {
  const d = e.data;
  if (d.calls) {
    const k = new WebAssembly.Instance(d.module, { env: { memory: d.memory } }).exports;
    calls = d.calls;
    fns = calls.map(([name]) => k[name]);
    // First touch of this thread's workspace, and time for the engine to optimise the kernels.
    for (const t0 = performance.now(); performance.now() - t0 < d.warmMs;) step(0, calls.length);
    postMessage(null);
    return;
  }
  const words = new Int32Array(d.control);
  Atomics.add(words, 1, 1);
  Atomics.wait(words, 0, 0);
  const t0 = performance.now();
  let steps = 0;
  while (performance.now() - t0 < d.ms) { step(d.from, d.to); steps++; }
  postMessage({ steps, ms: performance.now() - t0 });
};`;

export class StepReplay {
  /** Per thread: the calls of one training step of every model, in order. */
  private constructor(
    private readonly module: WebAssembly.Module,
    private readonly memory: WebAssembly.Memory,
    readonly calls: KernelCall[][],
    /** Per model: the range of its calls within a thread's list. */
    readonly perModel: { model: string; from: number; to: number }[],
    /** The arena the calls point into (the cache model follows its regions). */
    readonly plan: ArenaPlan,
  ) {}

  /** Record the step calls of `models` for up to `threads` threads, each on its own batch and workspace. */
  static build(module: WebAssembly.Module, specs: string[], shape: number[], classes: number, threads: number): StepReplay {
    const rows = REPLAY_ROWS;
    const sampleBytes = shape.reduce((a, b) => a * b, 1);
    const planner = new ArenaPlanner();
    const nets = specs.map((spec) => {
      const net = new Network(spec, shape as [number, number, number], classes);
      return {
        net,
        params: planner.floats("parameters", `${spec}.params`, net.paramFloats),
        velocity: planner.floats("optimizerState", `${spec}.velocity`, net.paramFloats),
        perThread: Array.from({ length: threads }, (_, t) => ({
          grads: planner.floats("gradients", `${spec}.grads${t}`, net.paramFloats),
          ws: net.planWorkspace(planner, `${spec}.t${t}`, rows),
        })),
      };
    });
    const bytes = planner.reserve("data", "samples", DATA_SAMPLES * sampleBytes);
    const labelBytes = planner.reserve("data", "labels", DATA_SAMPLES);
    const indices = planner.reserve("activations", "indices", rows * threads * 4);
    const plan = planner.finish();
    const memory = createSharedMemory(plan);
    const rng = Rng.derive(1, "step replay");
    const samples = u8(memory, bytes, DATA_SAMPLES * sampleBytes);
    for (let i = 0; i < samples.length; i++) samples[i] = rng.int(256);
    const labels = u8(memory, labelBytes, DATA_SAMPLES);
    for (let i = 0; i < labels.length; i++) labels[i] = rng.int(classes);
    const idx = new Int32Array(memory.buffer, indices, rows * threads);
    for (let i = 0; i < idx.length; i++) idx[i] = rng.int(DATA_SAMPLES);

    const k = instantiateKernels(module, memory);
    for (const { net, params } of nets) net.initialize(f32(memory, params, net.paramFloats), Rng.derive(1, "step replay", net.specText));
    const calls: KernelCall[][] = [];
    const perModel: { model: string; from: number; to: number }[] = [];
    for (let t = 0; t < threads; t++) {
      const mine: KernelCall[] = [];
      const recorder = wrapKernels(k, (name, call, args) => {
        mine.push([name, args as number[]]);
        return call();
      });
      for (const { net, params, velocity, perThread } of nets) {
        const from = mine.length;
        const { grads, ws } = perThread[t]!;
        recorder.gather_batch(ws.input, ws.labels, bytes, labelBytes, indices + t * rows * 4, rows, sampleBytes, 1 / 255, 0);
        net.gradient(recorder, params, grads, ws, rows, 1 / rows);
        recorder.momentum_update(params, grads, velocity, net.paramFloats, 1e-6, 0.9, 0, 0, 0);
        if (t === 0) perModel.push({ model: net.specText, from, to: mine.length });
      }
      calls.push(mine);
    }
    return new StepReplay(module, memory, calls, perModel, plan);
  }

  /**
   * Seconds one step of model `model` costs by `table` with kernels as alone in a timing loop (no
   * kernels-in-context factor, no time around calls): the calls' fitted costs, plus what the cache
   * model charges for operands the step touched a while ago (in the steady state: the second of two
   * steps, as the replay runs them back to back).
   */
  aloneSeconds(model: number, table: CostTable): number {
    const { from, to } = this.perModel[model]!;
    const bare = { ...table, contextFactor: 1, callSeconds: 0 };
    const calls = this.calls[0]!.slice(from, to);
    const cache = new CacheTracker(table.memory, this.plan, this.memory, warmCurves(table));
    let seconds = 0;
    for (let pass = 0; pass < 2; pass++) {
      for (const [name, args] of calls) {
        const extra = cache.extraSeconds(name, args, streamedBytesFunction(name)(args));
        if (pass === 1) seconds += kernelCostFunction(bare, name)(args) + extra;
      }
    }
    return seconds;
  }

  private workers: Worker[] = [];

  /** Start the threads and warm them up (the engine optimises a kernel only after it has run a while). */
  async start(warmMs = 500): Promise<void> {
    const url = URL.createObjectURL(new Blob([WORKER_CODE], { type: "application/javascript" }));
    try {
      this.workers = this.calls.map(() => new Worker(url));
      await Promise.all(this.workers.map((w, t) => this.ask(w, { module: this.module, memory: this.memory, calls: this.calls[t]!, warmMs })));
    } finally {
      URL.revokeObjectURL(url);
    }
  }

  close(): void {
    for (const w of this.workers) w.terminate();
    this.workers = [];
  }

  private ask<T>(w: Worker, message: unknown): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      w.onmessage = (e) => resolve(e.data as T);
      w.onerror = (e) => reject(new Error(e.message));
      w.postMessage(message);
    });
  }

  /** Steps per second of k threads replaying at once for `ms`: steps of model `model` (an index into perModel), or of all. */
  async throughput(k: number, ms: number, model: number | null = null): Promise<number> {
    if (this.workers.length < k) throw new Error(`step replay: ${k} threads asked, ${this.workers.length} started`);
    const { from, to } = model === null ? { from: 0, to: this.calls[0]!.length } : this.perModel[model]!;
    const control = new SharedArrayBuffer(8);
    const words = new Int32Array(control);
    const done = this.workers.slice(0, k).map((w) => this.ask<{ steps: number; ms: number }>(w, { control, ms, from, to }));
    while (Atomics.load(words, 1) < k) await Bun.sleep(1); // every thread parked on the start word
    Atomics.store(words, 0, 1);
    Atomics.notify(words, 0);
    const results = await Promise.all(done);
    return results.reduce((a, r) => a + (r.steps / r.ms) * 1000, 0);
  }

  /**
   * speedup[k − 1] = throughput of k threads / one thread's, k = 1…threads (all models' steps): the
   * best of `trials` rounds over every k (other load only ever slows a trial down; rounds alternate
   * the k so that a slow moment of the machine does not fall on one k alone).
   */
  async speedup(threads: number, ms: number, trials = 3): Promise<number[]> {
    const rates = new Array<number>(threads).fill(0);
    for (let trial = 0; trial < trials; trial++) {
      for (let k = 1; k <= threads; k++) rates[k - 1] = Math.max(rates[k - 1]!, await this.throughput(k, ms));
    }
    // k threads never do more than k times one thread's work: more is one thread timed in a slow moment.
    return rates.map((r, i) => (i === 0 ? 1 : Math.min(i + 1, Math.round((r / rates[0]!) * 1000) / 1000)));
  }

  /**
   * Seconds of one step of model `model` on the calling thread, on the machine as it is now: the
   * median of `trials` timings of `ms` each. On the calling thread, as the kernels' isolated costs
   * were timed: the ratio of the two is the kernels' slowdown in context and nothing else.
   */
  stepSeconds(model: number, ms: number, trials = 3): number {
    const { from, to } = this.perModel[model]!;
    const here = (this.here ??= instantiateKernels(this.module, this.memory) as unknown as Record<string, (...args: number[]) => unknown>);
    const calls = this.calls[0]!.slice(from, to).map(([name, args]) => [here[name]!, args] as const);
    const step = () => {
      for (const [fn, args] of calls) fn(...args);
    };
    for (const t0 = performance.now(); performance.now() - t0 < ms;) step(); // warm
    const samples: number[] = [];
    for (let trial = 0; trial < trials; trial++) {
      const t0 = performance.now();
      let steps = 0;
      while (performance.now() - t0 < ms) {
        step();
        steps++;
      }
      samples.push((performance.now() - t0) / 1000 / steps);
    }
    return samples.sort((x, y) => x - y)[samples.length >> 1]!;
  }

  /**
   * Relative spread of one kernel call's time, from `steps` steps of model `model` timed one by one on
   * the calling thread: the steps' robust relative spread (median absolute deviation · 1.4826 over
   * the median, so that a moment of other load does not count), scaled from a step to one call as if
   * the calls varied independently (a step of calls c_i spreads by σ·√Σc_i² / Σc_i).
   */
  callJitter(model: number, steps: number, costOf: (call: KernelCall) => number): number {
    const { from, to } = this.perModel[model]!;
    const here = (this.here ??= instantiateKernels(this.module, this.memory) as unknown as Record<string, (...args: number[]) => unknown>);
    const mine = this.calls[0]!.slice(from, to);
    const calls = mine.map(([name, args]) => [here[name]!, args] as const);
    const times: number[] = [];
    for (let s = -Math.ceil(steps / 4); s < steps; s++) {
      const t0 = performance.now();
      for (const [fn, args] of calls) fn(...args);
      if (s >= 0) times.push(performance.now() - t0); // the first quarter more warms up
    }
    const med = median(times);
    const spread = (1.4826 * median(times.map((t) => Math.abs(t - med)))) / med;
    const costs = mine.map(costOf);
    const total = costs.reduce((a, c) => a + c, 0);
    const squares = Math.sqrt(costs.reduce((a, c) => a + c * c, 0));
    return spread * (total / squares);
  }

  private here: Record<string, (...args: number[]) => unknown> | undefined;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** Two threads handing a turn back and forth, each sleeping in Atomics.wait until it is theirs. */
const PING_PONG_CODE = `self.onmessage = (e) => {
  const { control, me, handoffs } = e.data;
  const w = new Int32Array(control);
  Atomics.add(w, 1, 1);
  Atomics.wait(w, 2, 0); // start together
  for (let i = me; i < handoffs; i += 2) {
    for (let seen; (seen = Atomics.load(w, 0)) !== i;) Atomics.wait(w, 0, seen); // one read: no lost wake-up
    Atomics.store(w, 0, i + 1);
    Atomics.notify(w, 0);
  }
  postMessage(null);
};`;

/**
 * Seconds from a notify to the sleeping waiter running again (futex wake-up and the notify itself):
 * the median over `trials` of a ping-pong's time per hand-over between two sleeping threads.
 */
export async function measureWakeSeconds(handoffs = 2000, trials = 5): Promise<number> {
  const url = URL.createObjectURL(new Blob([PING_PONG_CODE], { type: "application/javascript" }));
  const samples: number[] = [];
  try {
    for (let trial = 0; trial < trials; trial++) {
      const control = new SharedArrayBuffer(12);
      const words = new Int32Array(control);
      const workers = [0, 1].map(() => new Worker(url));
      try {
        const done = workers.map((w) => new Promise<void>((resolve, reject) => {
          w.onmessage = () => resolve();
          w.onerror = (e) => reject(new Error(e.message));
        }));
        workers.forEach((w, me) => w.postMessage({ control, me, handoffs }));
        while (Atomics.load(words, 1) < 2) await Bun.sleep(1);
        const t0 = performance.now();
        Atomics.store(words, 2, 1);
        Atomics.notify(words, 2);
        await Promise.all(done);
        samples.push((performance.now() - t0) / 1000 / handoffs);
      } finally {
        workers.forEach((w) => w.terminate());
      }
    }
  } finally {
    URL.revokeObjectURL(url);
  }
  return median(samples);
}
