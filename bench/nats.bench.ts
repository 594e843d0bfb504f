/**
 * Runs across processes over NATS, against their peers measured in the same run (alternating rounds,
 * medians, ratios):
 *
 *   transport   parameter-vector messages (mlp:784-256-128-10: 235,146 floats, 0.94 MB) from this
 *               process to a child through skein's transport (framing, checks, chunks, a local
 *               nats-server), over the server's TCP listener on Bun's native socket (what skein's
 *               processes use), over its WebSocket listener and over TCP through node:net (--links
 *               picks: tcp,websocket,node:net), against the same bytes over a raw loopback TCP stream
 *               to a child (target: NATS ≥ 0.5 × TCP). Each sender waits for its socket to drain
 *               after each vector, as a Node stream's writer does; the NATS receiver writes each
 *               vector into a shared WebAssembly.Memory, as skein does, while the raw TCP one only
 *               counts bytes. Prints the CPU seconds per GB of each process (sender, nats-server,
 *               receiver) and what they allow on 2 cores.
 *   gossip      a 16-node ring DmSGD round (batch 16 per node, 2 workers): 2 processes against 1
 *               (target: ≤ 2×)
 *   pipeline    1f1b at D = 2, 4 microbatches: 2 processes against 1, samples/s (target: ≥ 0.7×),
 *               on the small mlp:784-256-128-10 at batch 64 (latency-bound: 8 hand-offs per batch of
 *               about 1.5 ms) and on a pipeline-sized mlp:784-1024-1024-1024-1024-10 at batch 512
 *
 * The transport's one-way latency (round trips of 64 bytes), bandwidth and CPU per byte in each
 * process make a --network model (--network-out FILE writes it); the gossip section runs the simulated
 * executor with it, placed on 2 processes (only crossing messages pay the network; with and without the
 * CPU per byte) and not (every edge pays), and prints the predictions beside the measured round.
 *
 * The gossip and pipeline sections also print, for the 2-process runs, the CPU of each rank's main
 * thread (which relays the hand-offs) and of the nats-server per step. --against DIR adds, in the
 * same rounds, 2-process runs of the checkout in DIR (its coordinator code and its processes: a
 * change to the transport measured against its base), with the ratio of the two per round.
 *
 * The 2-process runs also print, per rank, what its main thread did per step while the programs ran
 * (the summary's `processes.mainThread`, read from /proc at each epoch's start and end): CPU, user and
 * system; sleeps (voluntary context switches: each is one event-loop wait that ended) and preemptions;
 * Atomics.waitAsync armed on the outbox and woken by a claim; setImmediate retries; barrier waits;
 * wakes relayed and accepted; socket writes, reads and direct reads; heartbeat and progress messages.
 *
 * --profile DIR starts this checkout's follower processes under Bun's sampling profiler
 * (`--cpu-prof-md --cpu-prof-dir DIR`, at --profile-interval µs, default 100); rank 0 runs in this
 * process, so profile it by starting the bench itself the same way:
 *   npx bun --cpu-prof-md --cpu-prof-dir DIR bench/nats.bench.ts --only pipeline --models small --profile DIR
 *
 *   npx bun bench/nats.bench.ts [--rounds 3] [--messages 100] [--epochs 3] [--only transport,gossip,pipeline] [--models small,large] [--against DIR] [--links tcp,websocket,node:net] [--network-out FILE] [--profile DIR [--profile-interval US]]
 */
import { spawn } from "node:child_process";
import { writeFileSync, rmSync } from "node:fs";
import { childrenOf, cpuSampler, cpuSecondsOf } from "./process-cpu.ts";
import { tcpPeer } from "./raw-tcp-peer.ts";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { benchArgs, numberFlag } from "./args.ts";
import { startLocalServer } from "../engine/distributed/server.ts";
import { Transport } from "../engine/distributed/transport.ts";
import { KIND, newRunId, parseRunId, runIdHex } from "../engine/distributed/frame.ts";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import { train, type TrainConfig } from "../engine/train.ts";
import { trainAcrossProcesses } from "../engine/run-processes.ts";
import type { TransportCpu } from "../engine/runtime/transport-cpu.ts";
import type { MainThreadFigures } from "../engine/distributed/main-thread.ts";

const SCRIPT = "nats.bench";
const { values: v } = benchArgs(SCRIPT, {
  options: {
    rounds: { type: "string" },
    messages: { type: "string" },
    epochs: { type: "string" },
    only: { type: "string" },
    models: { type: "string" },
    against: { type: "string" },
    links: { type: "string" },
    "network-out": { type: "string" },
    profile: { type: "string" },
    "profile-interval": { type: "string" },
    // internal: this script as the receiving child
    receive: { type: "string" },
    url: { type: "string" },
    run: { type: "string" },
    socket: { type: "string" },
  },
});
const VECTOR_BYTES = 235_146 * 4;
const PINGS = 200;
let measured: { latencySeconds: number; bytesPerSecond: number; cpuSecondsPerByte: TransportCpu } | null = null;

if (v.receive) await receiver();

const rounds = numberFlag(SCRIPT, "rounds", v.rounds, 3, { min: 1, max: 50, integer: true });
const messages = numberFlag(SCRIPT, "messages", v.messages, 100, { min: 1, max: 10_000, integer: true });
const epochs = numberFlag(SCRIPT, "epochs", v.epochs, 3, { min: 1, max: 100, integer: true });
const only = new Set((v.only ?? "transport,gossip,pipeline").split(","));
const PIPELINE_MODELS = { small: ["mlp:784-256-128-10", 64], large: ["mlp:784-1024-1024-1024-1024-10", 512] } as const;
const pipelineModels = (v.models ?? "small,large").split(",").map((m) => {
  if (!(m in PIPELINE_MODELS)) throw new Error(`${SCRIPT}: --models takes small,large (the pipeline section's models), not '${m}'`);
  return PIPELINE_MODELS[m as keyof typeof PIPELINE_MODELS];
});
const LISTENERS = ["tcp", "websocket", "node:net"] as const;
const listeners = LISTENERS.filter((l) => (v.links ?? LISTENERS.join(",")).split(",").includes(l));
if (listeners[0] !== "tcp") throw new Error(`${SCRIPT}: --links must include tcp (skein's link), first`);
const profileInterval = numberFlag(SCRIPT, "profile-interval", v["profile-interval"], 100, { min: 10, max: 100_000, integer: true });
const profiler = v.profile ? ["--cpu-prof-md", `--cpu-prof-dir=${resolve(v.profile)}`, `--cpu-prof-interval=${profileInterval}`] : [];
const SELF = [process.execPath, ...profiler, join(import.meta.dir, "..", "engine", "cli", "main.ts")];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const range = (xs: number[], f: (x: number) => string) => `${f(Math.min(...xs))}–${f(Math.max(...xs))}`;

console.log(`${SCRIPT}: load average ${loadavg().map((x) => x.toFixed(2)).join(" ")} at start`);

if (only.has("transport")) {
  // One server, both of its listeners: skein's processes over WebSocket (the launcher's default) and
  // over plain TCP (node:net), each to a receiving child of its own, alternating with raw TCP.
  const server = await startLocalServer();
  const links = [];
  for (const listener of listeners) {
    links.push(
      await (async () => {
      const url = listener === "websocket" ? server.wsUrl : server.url;
      const socket = listener === "node:net" ? "node:net" : "native";
      const runId = newRunId();
      const child = spawn(process.execPath, [import.meta.path, "--receive", "nats", "--url", url, "--run", runIdHex(runId), "--messages", String(messages), "--socket", socket], { stdio: ["ignore", "inherit", "inherit"], env: { ...process.env, SKEIN_NATS_TOKEN: server.token } });
      const t = await Transport.connect({ url, token: server.token, runId, rank: 0, procs: 2, socket });
      await t.receive(1, KIND.ready, 0);
      return { listener, child, t, rates: [] as number[], trips: [] as number[], senderCpu: [] as number[], serverCpu: [] as number[], receiverCpu: [] as number[], receiverSeen: 0 };
      })(),
    );
  }
  // Latency: round trips of a small message through the transport, one way = half of one.
  const ping = new Uint8Array(64);
  for (let i = 0; i < PINGS; i++) {
    for (const link of links) {
      const t0 = performance.now();
      link.t.send(1, KIND.exchange, i, ping);
      await link.t.receive(1, KIND.exchange, i, ping.length);
      link.trips.push(performance.now() - t0);
    }
  }
  const tcp = await tcpPeer();
  const vector = new Uint8Array(VECTOR_BYTES).map((_, i) => i * 31);
  const tcpRates: number[] = [];
  const tcpSenderCpu: number[] = [];
  const tcpReceiverCpu: number[] = [];
  // Where the CPU goes: this process's (the sender's) and the server's CPU seconds per round.
  const serverPid = childrenOf(server.pid)[0];
  const serverCpu = () => (serverPid ? cpuSecondsOf(serverPid) : NaN);
  const ownCpu = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  };
  // One round each first, not counted: the first megabytes through a fresh client run before the JIT
  // has compiled its paths (measured: 2–4× the CPU per byte of later rounds).
  for (const link of links) {
    for (let m = 0; m < messages; m++) await sendPaced(link.t, PINGS, vector);
    link.receiverSeen = (await link.t.receiveJson<{ cpu: number }>(1, KIND.results, 0)).cpu;
  }
  await tcp.round(vector, messages);
  for (let r = 1; r <= rounds; r++) {
    for (const link of links) {
      const [c0, s0, t0] = [ownCpu(), serverCpu(), performance.now()];
      for (let m = 0; m < messages; m++) await sendPaced(link.t, PINGS + r, vector);
      const { cpu } = await link.t.receiveJson<{ cpu: number }>(1, KIND.results, r);
      link.receiverCpu.push(cpu - link.receiverSeen);
      link.receiverSeen = cpu;
      link.rates.push((messages * VECTOR_BYTES) / ((performance.now() - t0) / 1000));
      link.senderCpu.push(ownCpu() - c0);
      link.serverCpu.push(serverCpu() - s0);
    }
    const [c0, t0] = [ownCpu(), performance.now()];
    tcpReceiverCpu.push(await tcp.round(vector, messages));
    tcpRates.push((messages * VECTOR_BYTES) / ((performance.now() - t0) / 1000));
    tcpSenderCpu.push(ownCpu() - c0);
  }
  for (const link of links) {
    link.t.sendJson(1, KIND.command, 0, { do: "finish" });
    await link.t.close();
    await new Promise((r) => link.child.once("exit", r));
  }
  tcp.close();
  await server.stop();
  const mb = (x: number) => `${(x / 1e6).toFixed(0)}`;
  const us = (ms: number) => `${((ms / 2) * 1000).toFixed(0)}`;
  console.log(`transport: ${messages} vectors of ${(VECTOR_BYTES / 1e6).toFixed(2)} MB per round, ${rounds} rounds`);
  for (const link of links) {
    const name = { tcp: "NATS over TCP, Bun socket (skein's)", websocket: "NATS over WebSocket                ", "node:net": "NATS over TCP, node:net            " }[link.listener];
    console.log(`  ${name}  ${mb(median(link.rates))} MB/s  (${range(link.rates, mb)})  NATS / TCP = ${(median(link.rates) / median(tcpRates)).toFixed(2)}  (per round: ${link.rates.map((n, i) => (n / tcpRates[i]!).toFixed(2)).join(", ")})`);
  }
  console.log(`  raw loopback TCP               ${mb(median(tcpRates))} MB/s  (${range(tcpRates, mb)})  (target: skein's NATS ≥ 0.5 × this)`);
  // CPU seconds per GB moved, medians over rounds: the server's alone bounds what NATS can carry.
  const perGB = (cpu: number[]) => (median(cpu) / ((messages * VECTOR_BYTES) / 1e9)).toFixed(2);
  for (const link of links) {
    const total = [link.senderCpu, link.serverCpu, link.receiverCpu].reduce((a, c) => a + Number(perGB(c)), 0);
    console.log(
      `  CPU s/GB over ${link.listener}: sender ${perGB(link.senderCpu)}, nats-server ${perGB(link.serverCpu)}, receiver ${perGB(link.receiverCpu)}: ${total.toFixed(2)} in all, so at most ${(2 / total).toFixed(1)} GB/s on 2 cores kept busy (the server alone: ${(1 / Number(perGB(link.serverCpu))).toFixed(1)} GB/s per core)`,
    );
  }
  console.log(`  CPU s/GB over raw TCP: sender ${perGB(tcpSenderCpu)}, receiver ${perGB(tcpReceiverCpu)} (counts the bytes, copies nothing)`);
  for (const link of links) {
    const sorted = [...link.trips].sort((a, b) => a - b);
    console.log(`  latency over ${link.listener}: ${us(median(link.trips))} µs one way (median of ${PINGS} round trips of 64 bytes, p10–p90 ${us(sorted[PINGS / 10]!)}–${us(sorted[PINGS - PINGS / 10]!)} µs)`);
  }
  const skeins = links[0]!;
  // CPU per byte of each process on skein's link, medians over rounds: what the simulator charges the
  // processes a message crosses between when the machine has no core to spare.
  const perByte = (cpu: number[]) => median(cpu) / (messages * VECTOR_BYTES);
  measured = {
    latencySeconds: median(skeins.trips) / 2 / 1000,
    bytesPerSecond: median(skeins.rates),
    cpuSecondsPerByte: { sendSecondsPerByte: perByte(skeins.senderCpu), receiveSecondsPerByte: perByte(skeins.receiverCpu), relaySecondsPerByte: perByte(skeins.serverCpu) },
  };
  if (v["network-out"]) writeFileSync(v["network-out"], JSON.stringify(measured) + "\n");
  console.log(`  as a --network model: ${JSON.stringify(measured)}${v["network-out"] ? ` (written to ${v["network-out"]})` : ""}`);
}

/**
 * One vector to the receiver, then wait until the socket has written it, as the raw TCP sender waits for
 * its stream to drain: a burst of hundreds of megabytes would otherwise sit in this process's memory.
 */
async function sendPaced(t: Transport, tag: number, vector: Uint8Array): Promise<void> {
  t.send(1, KIND.exchange, tag, vector);
  await t.drained();
}

/** A run across 2 processes of another checkout (--against DIR): its coordinator's code and its processes. */
type AcrossRun = (config: TrainConfig) => Promise<Awaited<ReturnType<typeof train>>>;
const against: AcrossRun | null = v.against
  ? await (async () => {
      const dir = resolve(v.against!);
      const theirs = (await import(join(dir, "engine", "run-processes.ts"))) as typeof import("../engine/run-processes.ts");
      const self = [process.execPath, join(dir, "engine", "cli", "main.ts")];
      return (config) => theirs.trainAcrossProcesses(config, {}, { procs: 2, self });
    })()
  : null;

/**
 * Seconds per training step and samples/s of a run in one process and across 2 (and across 2 with
 * --against's code), alternating; the two across-process runs swap places every round.
 */
async function sideBySide(name: string, config: TrainConfig) {
  type Figures = { step: number; rate: number; coordinator: number; follower: number; server: number; frames: number; main: MainThreadFigures[] };
  const one: Figures[] = [];
  const two: Figures[] = [];
  const theirs: Figures[] = [];
  let crossingPerStep = 0;
  const acrossHere: AcrossRun = (c) => trainAcrossProcesses(c, {}, { procs: 2, self: SELF });
  for (let r = 0; r < rounds; r++) {
    const across = [[two, acrossHere] as const, ...(against ? [[theirs, against] as const] : [])];
    if (r % 2 === 1) across.reverse();
    for (const [into, run] of [[one, train] as const, ...across]) {
      const sampler = into === one ? null : cpuSampler();
      const s = await run(config);
      const used = sampler?.stop();
      // Bytes one process sends the other per step (the summary counts every process's frames).
      const steps = s.updatesPerSec * s.trainSeconds; // one update per round or pipeline batch
      if (s.processes && into === two) crossingPerStep = s.processes.bytesSent / s.processes.count / steps;
      const frames = (s.processes as { framesSent?: number } | undefined)?.framesSent ?? NaN;
      const main = ((s.processes as { mainThread?: MainThreadFigures[] } | undefined)?.mainThread ?? []).map((f) => Object.fromEntries(Object.entries(f).map(([k, x]) => [k, x / steps])) as unknown as MainThreadFigures);
      into.push({ step: 1 / s.updatesPerSec, rate: s.samplesPerSec, coordinator: (used?.coordinator ?? NaN) / steps, follower: (used?.follower ?? NaN) / steps, server: (used?.server ?? NaN) / steps, frames: frames / steps, main });
    }
  }
  const ms = (x: number) => (x * 1000).toFixed(2);
  const of = (xs: Figures[], f: (x: Figures) => number) => median(xs.map(f));
  console.log(`${name}: ${rounds} rounds of ${config.epochs} epochs each way`);
  console.log(`  1 process    ${ms(of(one, (x) => x.step))} ms/step  ${of(one, (x) => x.rate).toFixed(0)} samples/s`);
  for (const [label, xs] of [["2 processes", two], ...(against ? [[`2 processes, ${v.against}`, theirs] as const] : [])] as const) {
    const us = (f: (c: Figures) => number) => `${(of(xs, f) * 1e6).toFixed(0)} µs`;
    console.log(`  ${label}  ${ms(of(xs, (x) => x.step))} ms/step  ${of(xs, (x) => x.rate).toFixed(0)} samples/s  (${(of(xs, (x) => x.rate) / of(one, (x) => x.rate)).toFixed(2)} of 1 process)`);
    // The whole run's CPU (start-up and evaluation too) over its steps: a figure to compare, not a step's own cost.
    console.log(`    CPU per step (whole run / steps): rank 0's main thread ${us((c) => c.coordinator)}, rank 1's main thread ${us((c) => c.follower)}, nats-server ${us((c) => c.server)}; messages per step, both ranks (heartbeats and progress too): ${of(xs, (x) => x.frames).toFixed(1)}`);
    for (let rank = 0; rank < (xs[0]?.main.length ?? 0); rank++) {
      const f = (k: keyof MainThreadFigures) => of(xs, (x) => x.main[rank]?.[k] ?? NaN);
      const n = (k: keyof MainThreadFigures) => f(k).toFixed(2);
      console.log(
        `    rank ${rank}'s main thread per step while training: CPU ${((f("userSeconds") + f("systemSeconds")) * 1e6).toFixed(0)} µs (user ${(f("userSeconds") * 1e6).toFixed(0)}, system ${(f("systemSeconds") * 1e6).toFixed(0)}); sleeps ${n("sleeps")}, preempted ${n("preemptions")}, page faults ${n("pageFaults")}; outbox waits ${n("outboxWaits")} (woken by a claim ${n("outboxWakes")}), retries ${n("retries")}, barrier waits ${n("barrierWaits")}; wakes relayed ${n("relayed")}, accepted ${n("accepted")}; socket writes ${n("socketWrites")}, reads ${n("socketReads")}, direct reads ${n("directReads")}; heartbeats and progress ${n("timerMessages")}`,
      );
    }
  }
  if (against) {
    const paired = two.map((x, r) => theirs[r]!.step / x.step);
    console.log(`  paired per round, ${v.against} / this ms per step: ${paired.map((x) => x.toFixed(2)).join(" ")} (median ${median(paired).toFixed(2)})`);
    // Main-thread and server CPU, whole run / steps (the only CPU figures a checkout without the summary's mainThread gives).
    for (const [what, f] of [["rank 0's main thread", (x: Figures) => x.coordinator], ["rank 1's main thread", (x: Figures) => x.follower], ["nats-server", (x: Figures) => x.server]] as const) {
      const ratios = two.map((x, r) => f(theirs[r]!) / f(x));
      console.log(`  paired per round, ${v.against} / this CPU per step of ${what}: ${ratios.map((x) => x.toFixed(2)).join(" ")} (median ${median(ratios).toFixed(2)})`);
    }
  }
  return { stepRatio: of(two, (x) => x.step) / of(one, (x) => x.step), rateRatio: of(two, (x) => x.rate) / of(one, (x) => x.rate), two: of(two, (x) => x.step), one: of(one, (x) => x.step), crossingPerStep };
}

const base: TrainConfig = { algo: "dmsgd", model: "mlp:784-256-128-10", data: "digits", epochs, batch: 16, workers: 2, executor: "threads", seed: 1, optimizer: defaultOptimizer("momentum") };

if (only.has("gossip")) {
  const gossip: TrainConfig = { ...base, gossip: { nodes: 16, topology: "ring" } };
  const { stepRatio, two, one, crossingPerStep } = await sideBySide("gossip (dmsgd, 16-node ring, 2 workers)", gossip);
  console.log(`  round time, 2 processes / 1 = ${stepRatio.toFixed(2)}  (target ≤ 2)`);
  if (measured) {
    // The simulator's prediction with the measured transport as its network: placed on the 2 processes
    // (only the edges between them pay the network), and unplaced (every node's sends pay, as in a
    // cluster of one node per host), against the in-process round it simulates with no network.
    const file = join(tmpdir(), `skein-nats-network-${process.pid}.json`);
    const simulate = async (network: object, simulation: Omit<NonNullable<TrainConfig["simulation"]>, "network">) => {
      writeFileSync(file, JSON.stringify(network));
      return 1 / (await train({ ...gossip, executor: "simulated", simulation: { ...simulation, network: file } })).updatesPerSec;
    };
    const { cpuSecondsPerByte: _cpu, ...wire } = measured; // latency and bandwidth only
    const shm = 1 / (await train({ ...gossip, executor: "simulated", simulation: { network: "shm" } })).updatesPerSec;
    const [placedWire, placed, everyEdge] = [await simulate(wire, { procs: 2 }), await simulate(measured, { procs: 2 }), await simulate(wire, {})];
    rmSync(file);
    const ms = (x: number) => `${(x * 1000).toFixed(2)} ms`;
    console.log(`  simulated (virtual ms/round): 1 process ${ms(shm)} (measured ${ms(one)}); 2 processes placed ${ms(placedWire)} (latency + bandwidth), ${ms(placed)} (+ the transport's CPU per byte), every edge charged ${ms(everyEdge)}; measured on 2 processes ${ms(two)}`);
    console.log(
      `  prediction / measured, 2 processes: placed ${(placedWire / two).toFixed(2)} (latency + bandwidth), ${(placed / two).toFixed(2)} (+ CPU per byte), every edge ${(everyEdge / two).toFixed(2)}; the network's share: predicted +${ms(placedWire - shm)} / +${ms(placed - shm)}, measured +${ms(two - one)}`,
    );
    // A model of what actually crosses: the in-process round, plus each process's crossing bytes at the
    // measured bandwidth, one way and both ways through the one server (the range), plus one latency.
    const oneWay = crossingPerStep / measured.bytesPerSecond;
    console.log(
      `  crossing bytes ${(crossingPerStep / 1e6).toFixed(2)} MB per process per round: predicted ${((one + oneWay + measured.latencySeconds) * 1000).toFixed(1)}–${((one + 2 * oneWay + measured.latencySeconds) * 1000).toFixed(1)} ms/round, measured ${(two * 1000).toFixed(1)}`,
    );
  }
}
if (only.has("pipeline")) {
  for (const [model, batch] of pipelineModels) {
    const { rateRatio, one, crossingPerStep } = await sideBySide(`pipeline (1f1b, D = 2, 4 microbatches, ${model}, batch ${batch})`, { ...base, model, algo: "1f1b", batch, pipeline: { stages: 2, microbatches: 4 } });
    console.log(`  throughput, 2 processes / 1 = ${rateRatio.toFixed(2)}  (target ≥ 0.7)`);
    // Each batch hands 4 microbatches forward and 4 gradients back across, one after another at the
    // stage boundary: what the one-way latency alone costs against the in-process batch.
    if (measured) {
      const handOffs = 8 * measured.latencySeconds + crossingPerStep / measured.bytesPerSecond;
      console.log(`  8 hand-offs at ${(measured.latencySeconds * 1e6).toFixed(0)} µs + ${(crossingPerStep / 1e6).toFixed(2)} MB at the measured bandwidth = ${(handOffs * 1000).toFixed(2)} ms per batch against ${(one * 1000).toFixed(2)} ms in one process: ${(one / (one + handOffs)).toFixed(2)} if they all lay on the critical path`);
    }
  }
}
console.log(`${SCRIPT}: load average ${loadavg().map((x) => x.toFixed(2)).join(" ")} at end`);
process.exit(0);

async function receiver(): Promise<never> {
  const t = await Transport.connect({ url: v.url!, token: process.env.SKEIN_NATS_TOKEN, runId: parseRunId(v.run!), rank: 1, procs: 2, socket: v.socket === "node:net" ? "node:net" : "native" });
  t.send(0, KIND.ready, 0, new Uint8Array(0));
  for (let i = 0; i < PINGS; i++) t.send(0, KIND.exchange, i, await t.receive(0, KIND.exchange, i, 64));
  // Each vector is written where skein writes one: into a region of a shared WebAssembly.Memory.
  const arena = new WebAssembly.Memory({ initial: Math.ceil(VECTOR_BYTES / 65536), maximum: 65536, shared: true });
  const region = [new Uint8Array(arena.buffer, 0, VECTOR_BYTES)];
  const n = numberFlag(SCRIPT, "messages", v.messages, 100, { min: 1, integer: true });
  for (let r = 0; ; r++) {
    // Each round (round 0: the warm-up): `messages` vectors tagged with the round, received as a gossip
    // barrier's incoming regions are (all posted at once), then an acknowledgement; a command ends it.
    const regions = Array.from({ length: n }, () => region);
    if (!(await Promise.race([t.receiveEachInto(0, KIND.exchange, PINGS + r, regions).then(() => true), t.failed]).catch(() => false))) break;
    const u = process.cpuUsage();
    t.sendJson(0, KIND.results, r, { received: n, cpu: (u.user + u.system) / 1e6 });
  }
  await t.close();
  process.exit(0);
}
