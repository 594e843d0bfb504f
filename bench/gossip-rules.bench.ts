/**
 * What each gossip algorithm's own work costs per round, against DmSGD's, in one run:
 *
 *   npx bun bench/gossip-rules.bench.ts [--epochs 3]
 *
 * 1. The rule alone: every node's message and update (mixing included) for 16 nodes on a ring, with
 *    mlp:784-256-128-10-sized vectors, on one thread; the algorithms alternate round by round so they
 *    see the same stretches of this shared host's speed; median per round. This is where extra vectors
 *    cost (gradient tracking mixes two vectors, exact diffusion and push-sum keep one more).
 * 2. A whole training round as a user runs it: 16 nodes, per-node batch 16, 2 worker threads, epochs
 *    of each algorithm alternating in one process, median seconds per round.
 * Target (issue): every new algorithm ≤ 1.2× DmSGD's time per round at 16 nodes.
 */
import { loadKernelModule, instantiateKernels } from "../engine/kernels/load.ts";
import { ArenaPlanner, createSharedMemory } from "../engine/memory/arena.ts";
import { Network } from "../engine/model/network.ts";
import { buildTopology } from "../engine/algorithms/gossip/topology.ts";
import { mixingSchedule } from "../engine/algorithms/gossip/setup.ts";
import { algorithmsOf } from "../engine/algorithms/registry.ts";
import type { GossipAlgorithm, GossipLayout, GossipVectors } from "../engine/algorithms/gossip/round.ts";
import { TrainingSession } from "../engine/train.ts";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import { benchArgs, numberFlag } from "./args.ts";

const SCRIPT = "gossip-rules.bench";
const { values: flags } = benchArgs(SCRIPT, { options: { epochs: { type: "string" } } });
const EPOCHS = numberFlag(SCRIPT, "epochs", flags.epochs, 3, { min: 1, max: 100, integer: true });

const NODES = 16;
const ROUNDS = 40;
const MODEL = "mlp:784-256-128-10";
const floats = new Network(MODEL, [784], 10).paramFloats;
const gossip = algorithmsOf("gossip") as GossipAlgorithm[];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
// Settings of localsgd and slowmo: average every round here, their most expensive case.
const settings = { localSteps: 1, slowMomentum: 0.5, slowLr: 1 };

// ---- 1. the rules alone -------------------------------------------------------------------------
const { module } = await loadKernelModule();
const planner = new ArenaPlanner();
const vectors = (name: string) => Array.from({ length: NODES }, (_, i) => planner.floats("parameters", `${name}${i}`, floats));
const layouts = new Map<string, GossipVectors["layout"]>();
for (const a of gossip) {
  layouts.set(a.name, {
    nodes: NODES,
    params: vectors(`${a.name}.x`),
    momentum: vectors(`${a.name}.m`),
    messages: vectors(`${a.name}.h`),
    mixArgs: Array.from({ length: NODES }, (_, i) => ({ tensors: planner.reserve("control", `${a.name}.t${i}`, (NODES + 2) * 4), weights: planner.reserve("control", `${a.name}.w${i}`, (NODES + 2) * 4) })),
    state: Object.fromEntries((a.rule.state ?? []).map((s) => [s, vectors(`${a.name}.${s}`)])),
    scalars: planner.reserve("optimizerState", `${a.name}.scalars`, NODES * 4),
    scalarMessages: planner.reserve("gradients", `${a.name}.scalarMessages`, NODES * 4),
    settings,
  });
}
const grads = planner.floats("gradients", "g", floats);
const scratch = planner.floats("scratch", "s", floats);
const memory = createSharedMemory(planner.finish());
const k = instantiateKernels(module, memory);
new Float32Array(memory.buffer).fill(0.01, 1024);
const ring = mixingSchedule(buildTopology("ring", NODES)).rounds[0]!;
for (const a of gossip) for (let i = 0; i < NODES; i++) a.rule.prepare?.(memory, layouts.get(a.name)! as GossipLayout, i, floats);

const ruleTimes = new Map<string, number[]>(gossip.map((a) => [a.name, []]));
for (let r = 0; r < ROUNDS; r++) {
  for (const a of gossip) {
    const v: GossipVectors = { k, memory, floats, layout: layouts.get(a.name)! };
    const t = performance.now();
    for (let i = 0; i < NODES; i++) a.rule.message(v, i, grads, 0.01, 0.9, r);
    for (let i = 0; i < NODES; i++) a.rule.update(v, i, ring[i]!, scratch, 0.01, 0.9, i === 0, r);
    if (r >= 5) ruleTimes.get(a.name)!.push(performance.now() - t);
  }
}
const ruleBase = median(ruleTimes.get("dmsgd")!);
console.log(`1. the rule alone: 16 nodes on a ring, ${MODEL}-sized vectors (${floats} floats), one thread, median of ${ROUNDS - 5} rounds`);
for (const a of gossip) {
  const ms = median(ruleTimes.get(a.name)!);
  console.log(`  ${a.name.padEnd(10)} ${ms.toFixed(2).padStart(7)} ms/round  ${(ms / ruleBase).toFixed(2)}× dmsgd`);
}

// ---- 2. a whole round ------------------------------------------------------------------------------
const sessions = new Map<string, TrainingSession>();
for (const a of gossip) {
  const optimizer = a.name === "gt" || a.name === "ed" ? { ...defaultOptimizer("sgd"), lr: 0.05 } : { ...defaultOptimizer("momentum"), lr: 0.05 };
  sessions.set(
    a.name,
    await TrainingSession.open({
      algo: a.name,
      model: MODEL,
      data: "digits",
      epochs: EPOCHS + 1,
      batch: 16,
      workers: 2,
      executor: "threads",
      seed: 1,
      optimizer,
      gossip: { nodes: NODES, topology: "ring", partition: "iid", localSteps: 1 },
    }),
  );
}
const roundTimes = new Map<string, number[]>(gossip.map((a) => [a.name, []]));
for (let e = 0; e <= EPOCHS; e++) {
  for (const a of gossip) {
    const s = sessions.get(a.name)!;
    const epoch = await s.trainEpoch();
    if (e > 0) roundTimes.get(a.name)!.push(epoch.seconds / s.stepsPerEpoch); // epoch 0 warms up
  }
}
for (const s of sessions.values()) s.close();
const roundBase = median(roundTimes.get("dmsgd")!);
console.log(`2. a whole round: 16 nodes, per-node batch 16, 2 workers, digits, median over ${EPOCHS} epochs`);
for (const a of gossip) {
  const ms = median(roundTimes.get(a.name)!) * 1000;
  console.log(`  ${a.name.padEnd(10)} ${ms.toFixed(2).padStart(7)} ms/round  ${(ms / 1000 / roundBase).toFixed(2)}× dmsgd   (target ≤ 1.2× for the new ones)`);
}
