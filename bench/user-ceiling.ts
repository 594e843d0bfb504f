/**
 * The MLP's training GFLOP/s on one worker against the multiply-add ceiling, as a user runs it and
 * with the ceiling measured in the same run, in the same conditions.
 *
 *   npx bun bench/user-ceiling.ts [--rounds 5] [--batches 64,128] [--epochs 5] [--model mlp:784-256-128-10]
 *
 * Each round, for each batch size, two fresh processes back to back, their order swapped every round:
 *  - `skein train --workers 1 --batch B --epochs E --json` (sync, the default data, optimizer and
 *    model). Its summary's FLOP accounting gives the achieved GFLOP/s: the layers' GEMM FLOPs per
 *    sample × samples trained / the seconds of the training epochs. That window holds every step's
 *    gather, forward, loss, backward, gradient sum and optimizer update, and epoch 0 with its JIT
 *    tier-up; it leaves out the evaluation after each epoch, whose FLOPs are not counted either.
 *  - a ceiling process: the multiply-add loop (fma_ceiling, no memory traffic) run for as long as the
 *    training window just measured, on one thread, after a short warm-up. Its figure is the window's
 *    mean (all FLOPs / all seconds), so it meets the machine's load as the training did: a neighbour
 *    that takes the core for 10% of the window takes 10% from both. The best single burst in that
 *    window (the statistic of the ceiling cached once per machine) is printed beside it.
 *
 * Printed per batch: medians [p25–p75] over rounds of achieved GFLOP/s, both ceilings, the fraction of
 * each, and the fraction the summary itself reports (against the ceiling the run measured in short
 * windows between its epochs, the best window's mean).
 * Run it under the shared bench lock and note the load average beside the figures.
 */
import { join } from "node:path";
import { loadavg } from "node:os";
import { instantiateKernels, loadKernelModule } from "../engine/kernels/load.ts";
import { benchArgs, intListFlag, numberFlag } from "./args.ts";

const SCRIPT = "user-ceiling";
const { values: v } = benchArgs(SCRIPT, {
  options: {
    rounds: { type: "string" }, batches: { type: "string" }, epochs: { type: "string" }, model: { type: "string" },
    window: { type: "string" }, // internal: be the ceiling process for this many seconds
  },
});

const FLOPS_PER_ITERATION = 96; // fma_ceiling: 12 f32x4 multiply-adds per iteration
const BURST_ITERATIONS = 100_000; // about 0.15 ms at 60 GFLOP/s: many bursts per window

if (v.window !== undefined) {
  // The ceiling process: report the window's mean and its best burst as one JSON line.
  const seconds = numberFlag(SCRIPT, "window", v.window, 1, { min: 0.01, max: 600 });
  const { module } = await loadKernelModule();
  const k = instantiateKernels(module, new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true }));
  for (let i = 0; i < 200; i++) k.fma_ceiling(BURST_ITERATIONS); // warm: the optimising tier, as a trained step is
  let best = 0;
  let bursts = 0;
  const started = performance.now();
  let now = started;
  while (now - started < seconds * 1000) {
    k.fma_ceiling(BURST_ITERATIONS);
    const t = performance.now();
    best = Math.max(best, (BURST_ITERATIONS * FLOPS_PER_ITERATION) / (t - now) / 1e6);
    now = t;
    bursts++;
  }
  const mean = (bursts * BURST_ITERATIONS * FLOPS_PER_ITERATION) / (now - started) / 1e6;
  console.log(JSON.stringify({ mean, best, seconds: (now - started) / 1000 }));
  process.exit(0);
}

const ROUNDS = numberFlag(SCRIPT, "rounds", v.rounds, 5, { min: 1, max: 100, integer: true });
const BATCHES = intListFlag(SCRIPT, "batches", v.batches ?? "64,128");
const EPOCHS = numberFlag(SCRIPT, "epochs", v.epochs, 5, { min: 1, max: 1000, integer: true });
const MODEL = v.model ?? "mlp:784-256-128-10";
const ROOT = join(import.meta.dir, "..");

async function lastJsonLine(cmd: string[]): Promise<Record<string, any>> {
  const proc = Bun.spawn(cmd, { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`${cmd.join(" ")} exited ${code}: ${err.trim().split("\n").at(-1)}`);
  return JSON.parse(out.trim().split("\n").at(-1)!);
}

const train = (batch: number) =>
  lastJsonLine([process.execPath, "engine/cli/main.ts", "train", "--workers", "1", "--model", MODEL, "--batch", String(batch), "--epochs", String(EPOCHS), "--json"]);
const ceiling = (seconds: number) => lastJsonLine([process.execPath, join(import.meta.dir, "user-ceiling.ts"), "--window", seconds.toFixed(3)]);

interface Round { achieved: number; mean: number; best: number; /** the summary's ceiling */ cached: number; reported: number; load: number }
const results = new Map<number, Round[]>(BATCHES.map((b) => [b, []]));
const windowOf = new Map<number, number>(); // the last training window per batch (s)
for (let r = 0; r < ROUNDS; r++) {
  for (const batch of BATCHES) {
    const load = loadavg()[0]!;
    let run: Record<string, any>;
    let c: Record<string, any>;
    if (r % 2 === 0 || !windowOf.has(batch)) {
      run = await train(batch);
      windowOf.set(batch, run.trainSeconds);
      c = await ceiling(run.trainSeconds);
    } else {
      c = await ceiling(windowOf.get(batch)!);
      run = await train(batch);
      windowOf.set(batch, run.trainSeconds);
    }
    const f = run.flops;
    results.get(batch)!.push({ achieved: f.gflopsPerSec, mean: c.mean, best: c.best, cached: f.ceilingGflopsPerCore, reported: f.ofCeiling, load });
  }
}

const q = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.round(p * (xs.length - 1))]!;
const show = (xs: number[], d = 2) => `${q(xs, 0.5).toFixed(d)} [${q(xs, 0.25).toFixed(d)}–${q(xs, 0.75).toFixed(d)}]`;
console.log(`${MODEL}, sync, 1 worker, ${EPOCHS} epochs, default data and optimizer; ${ROUNDS} rounds, train and ceiling processes alternating; median [p25–p75]`);
for (const [batch, rs] of results) {
  const col = (f: (x: Round) => number, d = 2) => show(rs.map(f), d);
  console.log(`  batch ${batch}: achieved ${col((x) => x.achieved, 1)} GFLOP/s; ceiling over the same window ${col((x) => x.mean, 1)} (best burst ${col((x) => x.best, 1)}, the summary's ${col((x) => x.cached, 1)})`);
  console.log(`    of the ceiling over the same window: ${col((x) => x.achieved / x.mean)}   of its best burst: ${col((x) => x.achieved / x.best)}   summary's ofCeiling: ${col((x) => x.reported)}   load ${col((x) => x.load, 1)}`);
}
