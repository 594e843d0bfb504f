/**
 * Where one worker's training step of mlp:784-256-128-10 (or --model lenet) spends its time, kernel by kernel and GEMM by
 * GEMM shape, against the multiply-add ceiling measured in the same run. One thread, no runtime: the
 * step is the one a 1-worker sync run takes (the batch cut into syncBlockRows blocks, each block's
 * gradient into its own vector, the block-order sum, the SGD update), or with --whole the one a
 * 1-worker Hogwild! run takes (one block of the whole batch, no sum).
 *
 *   npx bun bench/mlp-step.bench.ts [--batches 64,128,256] [--steps 32] [--rounds 7] [--whole]
 *                                   [--optimizer sgd|momentum] [--against OTHER.wasm] [--model lenet]
 *
 * --against runs the same steps, on the same memory and data, with another build of the kernel module
 * (a copy of build/kernels.relaxed.wasm from before a change, say), alternating which goes first each
 * round, and prints the per-round step-time ratio: before/after figures from one run.
 *
 * Each round runs `steps` steps with every kernel call timed (keyed by kernel and, for GEMMs, by
 * M×K×N), `steps` steps untimed (the step rate), and a multiply-add burst (the ceiling); printed are
 * medians over rounds. FLOPs are the GEMMs' 2·M·K·N: the same count the run summary uses.
 */
import { syncBlockRows } from "../engine/algorithms/sync-sgd.ts";
import type { KernelExports, Ptr } from "../engine/kernels/abi.ts";
import { instantiateKernels, loadKernelModule } from "../engine/kernels/load.ts";
import { ArenaPlanner, createSharedMemory, f32, u8 } from "../engine/memory/arena.ts";
import { trainingFlopsPerSample } from "../engine/model/flops.ts";
import { Network } from "../engine/model/network.ts";
import { Rng } from "../engine/rng.ts";
import { wrapKernels } from "../engine/runtime/kernel-timer.ts";
import { benchArgs, intListFlag, numberFlag } from "./args.ts";

const SCRIPT = "mlp-step.bench";
const { values: v } = benchArgs(SCRIPT, {
  options: {
    batches: { type: "string" }, steps: { type: "string" }, rounds: { type: "string" }, whole: { type: "boolean" },
    optimizer: { type: "string" }, against: { type: "string" }, model: { type: "string" },
  },
});
const OPTIMIZER = v.optimizer ?? "sgd";
if (OPTIMIZER !== "sgd" && OPTIMIZER !== "momentum") {
  console.error(`${SCRIPT}: --optimizer ${OPTIMIZER}: want sgd or momentum`);
  process.exit(2);
}
const BATCHES = intListFlag(SCRIPT, "batches", v.batches ?? "64,128,256");
if (BATCHES.some((b) => b < 1 || b > 4096)) {
  console.error(`${SCRIPT}: --batches ${v.batches}: want batches in [1, 4096]`);
  process.exit(2);
}
const STEPS = numberFlag(SCRIPT, "steps", v.steps, 32, { min: 1, max: 10000, integer: true });
const ROUNDS = numberFlag(SCRIPT, "rounds", v.rounds, 7, { min: 1, max: 1000, integer: true });
const WHOLE = Boolean(v.whole);

const SPEC = v.model ?? "mlp:784-256-128-10";
const INPUT = SPEC.startsWith("mlp:") ? [784] : [1, 28, 28]; // 28×28 digits either way (784 bytes a sample)
const SAMPLES = 4096; // u8 images in the dataset the batches are gathered from (3.2 MB, like synthetic:4096)
const LR = 0.01;
const { module, variant } = await loadKernelModule();
let against: WebAssembly.Module | null = null;
if (v.against !== undefined) {
  try {
    against = await WebAssembly.compile(await Bun.file(v.against).arrayBuffer());
  } catch (e) {
    console.error(`${SCRIPT}: --against ${v.against}: ${(e as Error).message.split("\n")[0]}`);
    process.exit(2);
  }
}

/** The multiply-add ceiling now: the best of a few ~5 ms bursts (GFLOP/s). */
function ceilingNow(k: KernelExports): number {
  const iters = 50_000;
  let best = 0;
  for (let i = 0; i < 4; i++) {
    const t = performance.now();
    k.fma_ceiling(iters);
    best = Math.max(best, (iters * 96) / (performance.now() - t) / 1e6);
  }
  return best;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const GEMM = /^gemm_/;

const quartiles = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const at = (p: number) => s[Math.round(p * (s.length - 1))]!;
  return `${at(0.5).toFixed(3)} [${at(0.25).toFixed(3)}–${at(0.75).toFixed(3)}]`;
};

console.log(`${SPEC}, one thread, ${WHOLE ? "one block per step (1-worker Hogwild!)" : "sync's blocks (1-worker sync)"}, ${OPTIMIZER}, ${variant} kernels; ${ROUNDS} rounds of ${STEPS} steps, medians`);
for (const batch of BATCHES) {
  const rows = WHOLE ? batch : syncBlockRows(batch);
  const blocks = Math.ceil(batch / rows);
  const net = new Network(SPEC, INPUT, 10);
  const planner = new ArenaPlanner();
  const params = planner.floats("parameters", "params", net.paramFloats);
  const grads = Array.from({ length: blocks }, (_, b) => planner.floats("gradients", `block${b}.grads`, net.paramFloats));
  const ws = net.planWorkspace(planner, "worker0", rows);
  const images = planner.reserve("data", "images", SAMPLES * 784);
  const labels = planner.reserve("data", "labels", SAMPLES);
  const indices = planner.reserve("activations", "indices", batch * 4);
  const sumTable = planner.reserve("control", "sum.tensors", blocks * 4);
  const sumWeights = planner.reserve("control", "sum.weights", blocks * 4);
  const velocity = planner.floats("optimizerState", "velocity", net.paramFloats);
  const memory = createSharedMemory(planner.finish());
  const plain = instantiateKernels(module, memory);
  const peer = against && instantiateKernels(against, memory);

  const rng = Rng.derive(1, SCRIPT, batch);
  net.initialize(f32(memory, params, net.paramFloats), rng);
  const img = u8(memory, images, SAMPLES * 784);
  for (let i = 0; i < img.length; i++) img[i] = rng.int(256);
  const lab = u8(memory, labels, SAMPLES);
  for (let i = 0; i < SAMPLES; i++) lab[i] = i % 10;
  const idx = new Int32Array(memory.buffer, indices, batch);
  new Int32Array(memory.buffer, sumTable, blocks).set(grads);
  new Float32Array(memory.buffer, sumWeights, blocks).fill(1);

  let step = 0;
  const trainSteps = (k: KernelExports) => {
    for (let s = 0; s < STEPS; s++, step++) {
      for (let i = 0; i < batch; i++) idx[i] = (step * 7919 + i * 104729) % SAMPLES;
      for (let b = 0; b < blocks; b++) {
        const n = Math.min(rows, batch - b * rows);
        k.gather_batch(ws.input, ws.labels, images, labels, indices + b * rows * 4, n, 784, 1 / 255, 0);
        net.gradient(k, params, grads[b]!, ws, n, 1 / batch);
      }
      if (blocks > 1) k.weighted_sum(grads[0]!, sumTable, sumWeights, blocks, net.paramFloats);
      if (OPTIMIZER === "sgd") k.sgd_update(params, grads[0]!, net.paramFloats, LR, 0);
      else k.momentum_update(params, grads[0]!, velocity, net.paramFloats, LR, 0.9, 0, 0, 0);
    }
  };

  const byKey = new Map<string, number[]>(); // ms per step, one entry per round
  const flopsOf = new Map<string, number>(); // GEMM FLOPs per step
  let round: Map<string, number> = new Map();
  let counting = true; // the first timed pass counts each GEMM shape's FLOPs per step
  const timed = wrapKernels(plain, (name, call, args) => {
    const key = GEMM.test(name) ? `${name} ${args[3]}×${args[4]}×${args[5]}` : name;
    if (counting && GEMM.test(name)) flopsOf.set(key, (flopsOf.get(key) ?? 0) + 2 * (args[3] as number) * (args[4] as number) * (args[5] as number));
    const t = performance.now();
    try {
      return call();
    } finally {
      round.set(key, (round.get(key) ?? 0) + performance.now() - t);
    }
  });

  trainSteps(plain); // warm the JIT
  if (peer) trainSteps(peer);
  trainSteps(timed);
  for (const key of flopsOf.keys()) flopsOf.set(key, flopsOf.get(key)! / STEPS);
  counting = false;
  const stepMs: number[] = [];
  const ceilings: number[] = [];
  const gemmMs: number[] = [];
  const peerRatio: number[] = []; // this build's step time / the other build's, per round
  const untimed = (k: KernelExports) => {
    const t = performance.now();
    trainSteps(k);
    return (performance.now() - t) / STEPS;
  };
  for (let r = 0; r < ROUNDS; r++) {
    round = new Map();
    trainSteps(timed);
    for (const [key, ms] of round) byKey.set(key, [...(byKey.get(key) ?? []), ms / STEPS]);
    gemmMs.push([...round].filter(([key]) => GEMM.test(key)).reduce((a, [, ms]) => a + ms, 0) / STEPS);
    if (peer && r % 2 === 1) {
      const other = untimed(peer);
      const mine = untimed(plain);
      stepMs.push(mine);
      peerRatio.push(mine / other);
    } else {
      const mine = untimed(plain);
      stepMs.push(mine);
      if (peer) peerRatio.push(mine / untimed(peer));
    }
    ceilings.push(ceilingNow(plain));
  }

  const ceiling = median(ceilings);
  const ms = median(stepMs);
  const flops = trainingFlopsPerSample(net).total * batch;
  const pct = (gflops: number) => `${((100 * gflops) / ceiling).toFixed(0).padStart(3)}%`;
  console.log(`\nbatch ${batch}: ${blocks} block${blocks > 1 ? "s" : ""} of ${rows}; step ${ms.toFixed(3)} ms = ${((batch / ms) * 1000).toFixed(0)} samples/s, ${(flops / ms / 1e6).toFixed(1)} GFLOP/s = ${pct(flops / ms / 1e6)} of the ceiling (${ceiling.toFixed(1)} GFLOP/s)`);
  console.log(`  ${"kernel".padEnd(26)} ${"ms/step".padStart(8)} ${"share".padStart(6)}   GFLOP/s  of ceiling`);
  const timedTotal = [...byKey.values()].reduce((a, xs) => a + median(xs), 0);
  for (const [key, xs] of [...byKey].sort((a, b) => median(b[1]) - median(a[1]))) {
    const m = median(xs);
    const f = flopsOf.get(key);
    const gf = f === undefined ? "" : `${(f / m / 1e6).toFixed(1).padStart(7)}  ${pct(f / m / 1e6)}`;
    console.log(`  ${key.padEnd(26)} ${m.toFixed(3).padStart(8)} ${((100 * m) / timedTotal).toFixed(1).padStart(5)}%   ${gf}`);
  }
  if (peer) console.log(`  step time, this build / ${v.against}: ${quartiles(peerRatio)} (median [p25–p75] of ${ROUNDS} alternating rounds)`);
  const g = median(gemmMs);
  const gemmFlops = [...flopsOf.values()].reduce((a, b) => a + b, 0); // the layers' own GEMMs (not a convolution's inner ones)
  console.log(`  GEMMs: ${g.toFixed(3)} ms/step, ${pct(gemmFlops / g / 1e6)} of the ceiling; the rest (gather, bias, activation, loss, sum, update, JavaScript): ${(ms - g).toFixed(3)} ms/step (${((100 * (ms - g)) / ms).toFixed(0)}% of the step)`);
}
