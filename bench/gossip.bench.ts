/**
 * One gossip round against the machine's memory bandwidth, in one run:
 *
 *   npx bun bench/gossip.bench.ts
 *
 * 16 nodes on a ring, 2 workers (8 nodes each), mlp:784-256-128-10-sized models. A DmSGD round's
 * mixing reads each node's 3 incoming messages and writes its model: 4 model-sized transfers per node.
 * The peer: the same 2 workers stream exactly those bytes through a weighted sum of 3 separate
 * vectors into a 4th (no mixing logic, no topology), which is what the memory system can do.
 * Target: a round costs ≤ 2× that streaming time. Medians over rounds; both measured in this run.
 */
import * as Comlink from "comlink";
import { loadKernelModule } from "../engine/kernels/load.ts";
import { ArenaPlanner, createSharedMemory } from "../engine/memory/arena.ts";
import { planControl, WORD } from "../engine/runtime/control.ts";
import { Network } from "../engine/model/network.ts";
import { buildTopology } from "../engine/algorithms/gossip/topology.ts";
import { mixingSchedule } from "../engine/algorithms/gossip/setup.ts";
import { shardOf } from "../engine/runtime/split.ts";
import type { GossipBenchWorker } from "./workers/gossip-worker.ts";
import { benchArgs } from "./args.ts";

benchArgs("gossip.bench", { options: {} }); // takes no flags: refuse any rather than ignore it

const NODES = 16;
const WORKERS = 2;
const ROUNDS = 60;
const floats = new Network("mlp:784-256-128-10", [784], 10).paramFloats;
const { module } = await loadKernelModule();

const planner = new ArenaPlanner();
const control = planControl(planner, WORKERS);
const vec = (name: string) => Array.from({ length: NODES }, (_, i) => planner.floats("parameters", `${name}${i}`, floats));
const params = vec("x");
const momentum = vec("m");
const messages = vec("h");
const mixArgs = Array.from({ length: NODES }, (_, i) => ({ tensors: planner.reserve("control", `t${i}`, (NODES + 2) * 4), weights: planner.reserve("control", `w${i}`, (NODES + 2) * 4) }));
const scratch = Array.from({ length: WORKERS }, (_, w) => planner.floats("scratch", `s${w}`, floats));
// The peer's own vectors: 3 inputs and 1 output per node, so nothing is shared or cached between nodes.
const streamIns = Array.from({ length: NODES }, (_, i) => [0, 1, 2].map((j) => planner.floats("scratch", `in${i}.${j}`, floats)));
const streamOuts = vec("out");
const streamArgs = Array.from({ length: WORKERS }, (_, w) => ({ tensors: planner.reserve("control", `st${w}`, 16), weights: planner.reserve("control", `sw${w}`, 16) }));
const memory = createSharedMemory(planner.finish());
new Float32Array(memory.buffer).fill(0.5, 1024);

const ring = mixingSchedule(buildTopology("ring", NODES)).rounds[0]!;
const workers = Array.from({ length: WORKERS }, () => new Worker(new URL("./workers/gossip-worker.ts", import.meta.url)));
const apis = workers.map((w) => Comlink.wrap<GossipBenchWorker>(w));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const reset = () => new Int32Array(memory.buffer, control.words, WORD.count).fill(0);

const mixTimes: number[] = [];
const streamTimes: number[] = [];
for (let trial = 0; trial < 5; trial++) {
  // Alternate the two measurements so both see the same stretches of this shared host's speed.
  reset();
  const mix = await Promise.all(
    apis.map((api, w) =>
      api.mix({
        module, memory, control, parties: WORKERS,
        vectors: { floats, layout: { nodes: NODES, params, momentum, messages, mixArgs, state: {}, scalars: 0, scalarMessages: 0, settings: {} } },
        edges: ring, nodes: [shardOf(NODES, WORKERS, w).lo, shardOf(NODES, WORKERS, w).hi], scratch: scratch[w]!, rounds: ROUNDS,
      }),
    ),
  );
  mixTimes.push(...mix[0]!.slice(5));
  reset();
  const stream = await Promise.all(
    apis.map((api, w) => {
      const { lo, hi } = shardOf(NODES, WORKERS, w);
      return api.stream({ module, memory, outs: streamOuts.slice(lo, hi), ins: streamIns.slice(lo, hi), args: streamArgs[w]!, floats, rounds: ROUNDS, control, parties: WORKERS });
    }),
  );
  streamTimes.push(...stream[0]!.slice(5));
}
workers.forEach((w) => w.terminate());

const bytes = NODES * 4 * floats * 4;
const mixMs = median(mixTimes);
const streamMs = median(streamTimes);
console.log(`16-node ring, DmSGD mixing on ${WORKERS} workers, ${(floats * 4 / 1e6).toFixed(2)} MB models (${(bytes / 1e6).toFixed(1)} MB read + written per round)`);
console.log(`  gossip round (median)      ${mixMs.toFixed(3)} ms`);
console.log(`  streaming the same bytes   ${streamMs.toFixed(3)} ms   (${(bytes / streamMs / 1e6).toFixed(1)} GB/s)`);
console.log(`  round / bandwidth time     ${(mixMs / streamMs).toFixed(2)}×   (target ≤ 2×)`);
process.exit(0);
