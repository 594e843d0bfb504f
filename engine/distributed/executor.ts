/**
 * The threads executor of one process of a run that spans processes. Its pool runs this process's
 * programs on the shared memory as ever; its main thread links the process to the others:
 *
 *  - at every barrier, the last local program hands the barrier over (WORD.barrierHandOff); the main
 *    thread sends what other processes read after it, receives what this process reads into the same
 *    regions of its own arena, and only then releases the barrier;
 *  - the coordinator (rank 0) tells the followers which epoch to run; after it, every follower sends
 *    its programs' results and the state it alone writes, so that the coordinator holds the whole run
 *    (it evaluates, reports and checkpoints it exactly as in one process);
 *  - followers report their programs' progress a few times a second, which the coordinator writes
 *    into its own progress cells: one progress bar for the whole run.
 *
 * A failure anywhere (a program, a process, the network, a bad message) stops every process: the local
 * stop flag wakes this process's programs, an abort message tells the others why.
 */
import { WORD, type Control } from "../runtime/control.ts";
import type { RunSetup } from "../runtime/context.ts";
import type { Executor } from "../runtime/executor.ts";
import type { FaultPlan } from "../runtime/fault.ts";
import { WorkerPool } from "../runtime/pool.ts";
import type { RoleArgs } from "../runtime/roles.ts";
import { placementOf } from "../runtime/processes.ts";
import { Outbox } from "../runtime/outbox.ts";
import { mark, span, SpanRecorder } from "../runtime/trace.ts";
import type { Network } from "../model/network.ts";
import type { AlgorithmPlan, EpochResult } from "../algorithms/algorithm.ts";
import { regionViews, totalBytes, type CrossProcessPlan, type Region } from "./exchange.ts";
import { KIND } from "./frame.ts";
import { RelayTable, wordsToRelay } from "./wake.ts";
import { withDeadline, type Transport } from "./transport.ts";
import { StreamedBarrier } from "./stream.ts";
import { mainThreadNow, noFigures, type MainThreadFigures } from "./main-thread.ts";
import { nativeSocketOf } from "./tcp-socket.ts";
import { formatBytes, summarizeProcesses, type CommunicationStats, type ProcessesSummary } from "./accounting.ts";
import { PROGRESS_MS, progressBody, writeProgress } from "./progress.ts";

/** What a session hands the executor of a run that spans processes when it starts one. */
export interface ExecutorStart {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  setup: RunSetup;
  control: Control;
  plan: AlgorithmPlan;
  net: Network;
  /** Whole vectors a resumed run continues from (sent to the followers at start). */
  vectors: Region[];
  /** The session resumed from a checkpoint (the coordinator then sends the followers its state). */
  resumed: boolean;
  /** Epochs done before this session (a resumed run's). */
  epochsDone: number;
  fault: FaultPlan | null;
  watchdogMs?: number;
  /** This process's pool runs the JIT compiler at idle priority (runtime/compiler-threads.ts). */
  idleCompiler?: boolean;
}

/** How long a process may take to open its session (data, kernels, workers) before the run gives up. */
export const START_TIMEOUT_MS = 120_000;

/** What the coordinator tells a follower between epochs. */
export type Command = { do: "epoch"; epoch: number } | { do: "finish" };

export class DistributedExecutor implements Executor {
  private commMs = 0;
  /** Barriers handed over by this process's programs and released so far. */
  private served = 0;
  private readonly outbox: Outbox;
  /** Microseconds to add to this process's wall clock to read the coordinator's (trace alignment). */
  private clockOffsetUs = 0;
  /** The main thread's spans (exchanges, relays) when the run is traced. */
  private readonly spans: SpanRecorder | null;
  /** Per rank, its latest figures (the coordinator's own and what followers sent with their results). */
  private readonly commByRank: CommunicationStats[] = [];
  /** Commands sent (coordinator) or received (follower) so far; each carries the next number as its tag. */
  private commands = 0;
  /** The next barrier's transfers while they stream (plans that stream them only). */
  private stream: StreamedBarrier | null = null;
  /** What the main thread did while the programs ran, summed over epochs (the bench's per-step figures). */
  private readonly figures: MainThreadFigures = noFigures();
  /**
   * Per woken word, what relaying it takes, computed once per word, not per message (the arena never
   * grows, so the views of its regions stay valid).
   */
  private readonly relays: RelayTable;

  private constructor(
    private readonly pool: WorkerPool,
    private readonly transport: Transport,
    private readonly cross: CrossProcessPlan,
    private readonly start: ExecutorStart,
    private readonly algo: string,
  ) {
    this.outbox = new Outbox(start.memory, start.setup.control.outbox);
    // Before any program runs: programs queue only the words this thread relays (a word it would skip
    // costs it a wake all the same).
    const relayed = wordsToRelay(cross, transport.rank);
    if (relayed) this.outbox.relayOnly(relayed);
    this.spans = start.setup.trace ? new SpanRecorder() : null;
    this.relays = new RelayTable(start.memory, cross);
  }

  /**
   * Start this process's programs and meet the others: followers say they are ready, the coordinator
   * answers with the ranks' names (and a resumed run's state); heartbeats start on both sides.
   */
  static async open(start: ExecutorStart, transport: Transport, cross: CrossProcessPlan, algo: string): Promise<DistributedExecutor> {
    const { setup, control } = start;
    const placement = setup.processes!;
    const onFailure = () => control.requestStop();
    if (transport.failure) throw transport.failure;
    transport.failed.catch(onFailure);
    transport.maxMessageBytes = start.memory.buffer.byteLength;
    const pool = await Promise.race([
      WorkerPool.start(placement.count, { module: start.module, memory: start.memory, setup, control, fault: start.fault, stallMs: start.watchdogMs, first: placement.first, idleCompiler: start.idleCompiler }),
      transport.failed,
    ]);
    const executor = new DistributedExecutor(pool, transport, cross, start, algo);
    transport.onWake = (from, body) => executor.acceptWake(from, body);
    if (transport.rank === 0) {
      transport.onProgress = (from, body) => writeProgress(start.control, (r) => placementOf(setup.programs, placement.procs, r), from, body);
    }
    try {
      await executor.meet();
    } catch (e) {
      pool.terminate();
      throw e;
    }
    return executor;
  }

  get size(): number {
    return this.start.setup.programs;
  }

  get isCoordinator(): boolean {
    return this.transport.rank === 0;
  }

  stats(): CommunicationStats {
    return { bytesSent: this.transport.bytesSent, framesSent: this.transport.framesSent, seconds: this.commMs / 1000, mainThread: { ...this.figures } };
  }

  private async meet(): Promise<void> {
    const t = this.transport;
    const { memory, resumed } = this.start;
    const vectors = [...this.start.vectors, ...(this.cross.resumeRegions ?? [])];
    const within = <T>(p: Promise<T>, what: string) => withDeadline(p, START_TIMEOUT_MS, what, t);
    if (this.isCoordinator) {
      for (let r = 1; r < t.procs; r++) await within(t.receive(r, KIND.ready, 0), `${t.names[r]} to open its session`);
      for (let r = 1; r < t.procs; r++) {
        t.sendJson(r, KIND.command, 0, { do: "start", names: t.names, state: resumed, epochsDone: this.start.epochsDone, clock: SpanRecorder.wallNow() });
        if (resumed) t.send(r, KIND.state, 0, regionViews(memory, vectors));
      }
      t.startHeartbeats();
    } else {
      t.send(0, KIND.ready, 0, new Uint8Array(0));
      const start = await within(t.receiveJson<{ do: string; names: string[]; state: boolean; epochsDone: number; clock: number }>(0, KIND.command, 0), "the coordinator to start the run");
      // Trace clocks aligned at start: the coordinator's wall clock minus ours (one loopback or LAN hop off).
      if (Number.isFinite(start.clock)) this.clockOffsetUs = start.clock - SpanRecorder.wallNow();
      if (start.do !== "start" || !Array.isArray(start.names) || start.names.length !== t.procs) t.abort(`${t.names[t.rank]}: the coordinator's start message is malformed`);
      start.names.forEach((name, r) => (t.names[r] = String(name)));
      t.startHeartbeats();
      if (start.state) {
        await t.receiveInto(0, KIND.state, 0, regionViews(memory, vectors));
        // As a resumed session prepares after restoring (replicas from replica 0, hand-off words at the epoch count).
        if (!Number.isInteger(start.epochsDone) || start.epochsDone < 0) t.abort(`the coordinator's start message has epochsDone ${start.epochsDone}`);
        this.start.plan.prepare?.(memory, start.epochsDone, true);
      }
    }
  }

  async run<R>(role: string, args: (worker: number) => RoleArgs): Promise<R[]> {
    const t = this.transport;
    if (t.failure) throw t.failure;
    // Evaluation runs on the coordinator alone: it holds the whole state after every epoch.
    if (role !== this.algo) return this.pool.run<R>(role, args);
    const epoch = args(0).epoch ?? 0;
    if (this.isCoordinator) this.command({ do: "epoch", epoch });
    const local = this.annotate(await this.runLocally<EpochResult>(role, args, epoch));
    const { memory } = this.start;
    try {
      if (!this.isCoordinator) {
        t.sendJson(0, KIND.results, epoch, { results: local, comm: this.stats() });
        t.send(0, KIND.state, epoch + 1, regionViews(memory, this.cross.owned(t.rank)));
        return local as R[];
      }
      const all: EpochResult[] = [...local];
      for (let r = 1; r < t.procs; r++) {
        const { results: theirs, comm } = await t.receiveJson<{ results: EpochResult[]; comm: CommunicationStats }>(r, KIND.results, epoch);
        if (!Array.isArray(theirs)) t.abort(`${t.names[r]} sent epoch results that are not a list`);
        all.push(...theirs);
        this.commByRank[r] = comm;
        await t.receiveInto(r, KIND.state, epoch + 1, regionViews(memory, this.cross.owned(r)));
      }
      if (all.length !== this.size) t.abort(`epoch ${epoch + 1}: ${all.length} program results gathered, the run has ${this.size}`);
      this.commByRank[0] = this.stats();
      return all as R[];
    } catch (e) {
      throw t.failure ?? e;
    }
  }

  /**
   * Name the process on each local result; add the main thread's spans to the first program's track
   * (it waits at the barrier while they happen); shift every span onto the coordinator's clock.
   */
  private annotate(results: EpochResult[]): EpochResult[] {
    const t = this.transport;
    const main = this.spans?.take();
    results.forEach((r, d) => {
      r.process = t.names[t.rank];
      if (!r.trace) return;
      if (d === 0 && main && main.spans.length > 0) {
        const base = r.trace.names.length;
        r.trace.names.push(...main.names);
        for (let i = 0; i < main.spans.length; i += 3) r.trace.spans.push(base + main.spans[i]!, main.spans[i + 1]!, main.spans[i + 2]!);
      }
      if (this.clockOffsetUs !== 0) for (let i = 1; i < r.trace.spans.length; i += 3) r.trace.spans[i]! += this.clockOffsetUs;
    });
    return results;
  }

  /** The summary's account: processes, bytes per node per step, time each main thread spent communicating. */
  summary(steps: number, nodes: number): ProcessesSummary {
    return summarizeProcesses(this.transport.names, this.commByRank, steps, nodes);
  }

  /** Coordinator: tell every follower what to do next. */
  command(c: Command): void {
    this.commands++;
    for (let r = 1; r < this.transport.procs; r++) this.transport.sendJson(r, KIND.command, this.commands, c);
  }

  /** Follower: the coordinator's next command (bounded by the heartbeats: a silent coordinator fails the wait). */
  async nextCommand(): Promise<Command> {
    const c = await this.transport.receiveJson<Command>(0, KIND.command, ++this.commands);
    if (c?.do === "finish" || (c?.do === "epoch" && Number.isInteger(c.epoch) && c.epoch >= 0)) return c;
    return this.transport.abort(`the coordinator sent an unknown command ${JSON.stringify(c).slice(0, 80)}`), Promise.reject(this.transport.failure);
  }

  /** This process's programs for one epoch, with the barriers' exchanges and (followers) progress reports. */
  private async runLocally<R>(role: string, args: (worker: number) => RoleArgs, epoch: number): Promise<R[]> {
    const t = this.transport;
    const { control } = this.start;
    let finished = false;
    // Once the programs are done, wake the main thread's two waits at once rather than at their next
    // timeout (which cost 100 ms per epoch: 3 ms per gossip round at 32 rounds an epoch).
    const programs = this.pool.run<R>(role, args).finally(() => {
      finished = true;
      Atomics.notify(control.words, WORD.barrierHandOff);
      Atomics.notify(...this.outbox.claimedWord);
    });
    const progress = this.isCoordinator ? null : setInterval(() => this.sendProgress(), PROGRESS_MS);
    const counted = this.countsNow();
    try {
      await Promise.race([Promise.all([programs, this.serveBarriers(epoch, () => finished), this.relayWakes(() => finished)]), t.failed]);
      this.relayPending(); // wakes queued by the last steps
      return await programs;
    } catch (e) {
      if (t.failure) {
        control.requestStop();
        await programs.catch(() => {});
        throw t.failure;
      }
      // A local failure: tell every other process, then report it.
      const message = e instanceof Error ? e.message.split("\n")[0]! : String(e);
      t.abort(`${t.names[t.rank]}: ${message}`);
      throw e;
    } finally {
      if (progress) clearInterval(progress);
      const now = this.countsNow();
      for (const k of Object.keys(now) as (keyof typeof now)[]) this.figures[k] += now[k] - counted[k];
      if (!this.isCoordinator && !t.failure) this.sendProgress();
    }
  }

  /** The main thread's CPU and context switches, and what its socket and heartbeats did, so far. */
  private countsNow() {
    const socket = nativeSocketOf(this.transport.connection);
    return { ...mainThreadNow(), socketWrites: socket?.writes ?? NaN, socketReads: socket?.reads ?? NaN, directReads: socket?.directReads ?? NaN, timerMessages: this.transport.heartbeatsSent };
  }

  /** Release every barrier this process's programs hand over, once the other processes' data is in. */
  private async serveBarriers(epoch: number, finished: () => boolean): Promise<void> {
    const t = this.transport;
    const { control, memory } = this.start;
    const words = control.words;
    // Opened before the programs' first wake can be taken (the outbox is read on this thread only).
    this.stream = this.openStream(epoch, 0);
    for (let k = 0; ; k++) {
      while (Atomics.load(words, WORD.barrierHandOff) === this.served) {
        if (finished() || t.failure) return;
        this.figures.barrierWaits++;
        const wait = Atomics.waitAsync(words, WORD.barrierHandOff, this.served, 100);
        if (wait.async) await wait.value;
      }
      this.served++;
      const started = performance.now();
      const traced = mark(this.spans);
      let bytes = 0;
      const stream = this.stream;
      if (stream?.k === k) {
        this.relayPending(); // regions whose wakes are still queued
        stream.flush();
        await stream.received;
        bytes = stream.bytes;
      } else {
        for (let to = 0; to < t.procs; to++) {
          if (to === t.rank) continue;
          const regions = this.cross.transfers(epoch, k, t.rank, to);
          if (regions.length > 0) t.send(to, KIND.exchange, k, regionViews(memory, regions));
          bytes += totalBytes(regions);
        }
        for (let from = 0; from < t.procs; from++) {
          if (from === t.rank) continue;
          const regions = this.cross.transfers(epoch, k, from, t.rank);
          if (regions.length > 0) await t.receiveInto(from, KIND.exchange, k, regionViews(memory, regions));
        }
      }
      // Before the release: the next barrier's regions may be woken as soon as the programs go on.
      this.stream = this.openStream(epoch, k + 1);
      this.commMs += performance.now() - started;
      span(this.spans, `NATS exchange, ${formatBytes(bytes)} sent`, traced);
      Atomics.store(words, WORD.barrierCount, 0);
      Atomics.add(words, WORD.barrierGeneration, 1);
      Atomics.notify(words, WORD.barrierGeneration);
    }
  }

  private openStream(epoch: number, k: number): StreamedBarrier | null {
    return this.cross.streams?.(epoch, k) ? new StreamedBarrier(this.transport, this.start.memory, this.cross, epoch, k) : null;
  }

  /**
   * Relay every woken word another process waits on, with what it reads, in the order they were woken;
   * a word that says a streamed region is ready sends it.
   */
  private async relayWakes(finished: () => boolean): Promise<void> {
    if (!this.cross.relay && !this.cross.streams) return;
    const [array, index] = this.outbox.claimedWord;
    for (;;) {
      this.relayPending();
      if (finished() || this.transport.failure) return;
      const claimed = this.outbox.claimed();
      if (claimed === this.outbox.taken()) {
        this.figures.outboxWaits++;
        // No timeout (a timer per wait): the programs' end notifies this word, and a failure ends them.
        const wait = Atomics.waitAsync(array, index, claimed);
        if (wait.async && (await wait.value) === "ok") this.figures.outboxWakes++;
      } else {
        this.figures.retries++;
        await new Promise((r) => setImmediate(r)); // a producer is between its claim and its write
      }
    }
  }

  private relayPending(): void {
    if (!this.cross.relay && !this.cross.streams) return;
    const t = this.transport;
    for (let word = this.outbox.take(); word !== 0; word = this.outbox.take()) {
      if (this.stream?.woken(word)) continue;
      const relay = this.relays.of(word);
      if (!relay || relay.to === t.rank) continue;
      const started = performance.now();
      const traced = mark(this.spans);
      t.send(relay.to, KIND.wake, 0, relay.parts);
      this.figures.relayed++;
      this.commMs += performance.now() - started;
      if (this.spans) span(this.spans, `NATS hand-off, ${formatBytes(relay.bytes)}`, traced);
    }
  }

  /** A relayed wake from another process: checked, written and its word bumped, or the run aborted with why. */
  private acceptWake(from: number, body: Uint8Array): void {
    const t = this.transport;
    const refused = this.relays.accept(body, from, t.rank, t.names);
    if (refused !== null) return t.abort(refused);
    this.figures.accepted++;
  }

  /** Per local program: Σ loss and samples so far this epoch (progress.ts). */
  private sendProgress(): void {
    const p = this.start.setup.processes!;
    this.transport.send(0, KIND.progress, 0, progressBody(this.start.control, p.first, p.count));
    this.figures.timerMessages++;
  }

  terminate(): void {
    this.pool.terminate();
  }
}
