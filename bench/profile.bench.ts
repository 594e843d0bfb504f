/**
 * Where a run's time goes, 1 worker against 2, in one process: kernel time, busy time outside kernels
 * (TypeScript bookkeeping, batch gathering, queue and counter traffic) and time blocked in barriers or
 * queues, per 1000 samples summed over the workers. A third arm, "2 × 1", trains two independent
 * 1-worker sessions at the same time: what the two cores give two jobs that share nothing (the
 * capacity the user-scaling target is measured against). Epochs of the three arms alternate, rotating
 * which goes first.
 *
 *   npx bun bench/profile.bench.ts [--algo hogwild] [--batch 64] [--rounds 8] [--optimizer momentum]
 *
 * The optimizer defaults to the one `skein train` uses (momentum). Last, kernel by kernel: each kernel's
 * time per 1000 samples in each arm, 2w over 1w and 2w over 2 × 1. The second ratio separates what
 * the run's sharing costs (cache lines of weights, optimizer state and gradients moving between cores)
 * from what two busy cores cost any two jobs (shared cache and memory bandwidth, clock); a kernel that
 * only streams memory the other worker has just written (the optimizer's update of shared weights and
 * state) shows the first far more plainly than the GEMMs do.
 *
 * Kernel time is wall time inside kernel calls (profileKernels, as `skein train --profile`), so on a
 * shared machine it includes time the thread was descheduled mid-kernel: when it grows from 1 to 2
 * workers, the machine gave the second worker less than a core, or the two contend for memory.
 * The CPU column tells these apart: CPU time of the whole process (every thread, user + system) per
 * 1000 samples excludes time descheduled, so it grows only when the work itself costs more (cache
 * lines of the shared weights moving between cores, spinning); "cores used" is CPU s per wall s.
 */
import { TrainingSession, type TrainConfig } from "../engine/train.ts";
import { defaultOptimizer, OPTIMIZERS } from "../engine/optim/optimizer.ts";
import { ALGORITHM_NAMES } from "../engine/algorithms/registry.ts";
import { benchArgs, choiceFlag, numberFlag } from "./args.ts";

const SCRIPT = "profile.bench";
const { values: v } = benchArgs(SCRIPT, { options: { algo: { type: "string" }, batch: { type: "string" }, rounds: { type: "string" }, optimizer: { type: "string" } } });
const algo = choiceFlag(SCRIPT, "algo", v.algo, ALGORITHM_NAMES, "hogwild");
const optimizer = choiceFlag(SCRIPT, "optimizer", v.optimizer, OPTIMIZERS, "momentum");
const batch = numberFlag(SCRIPT, "batch", v.batch, 64, { min: 1, max: 65536, integer: true });
const rounds = numberFlag(SCRIPT, "rounds", v.rounds, 8, { min: 1, max: 1000, integer: true });

const config = (workers: number): TrainConfig => ({
  algo,
  model: "mlp:784-256-128-10",
  data: "synthetic:8192",
  epochs: 1_000_000,
  batch,
  workers,
  executor: "threads",
  seed: 1,
  optimizer: defaultOptimizer(optimizer),
});
// Three arms: one 1-worker session, one 2-worker session, and two 1-worker sessions training at the
// same time (what two cores give two jobs that share nothing: the capacity).
const open = (workers: number) => TrainingSession.open(config(workers), { profileKernels: true });
const arms = [{ label: "1", sessions: [await open(1)] }, { label: "2", sessions: [await open(2)] }, { label: "2 × 1", sessions: [await open(1), await open(1)] }];
const totals = arms.map(() => ({ wallMs: 0, cpuMs: 0, kernelMs: 0, busyMs: 0, waitedMs: 0, samples: 0, byKernel: new Map<string, number>() }));
for (let r = 0; r < rounds; r++) {
  for (let j = 0; j < arms.length; j++) {
    const i = (r + j) % arms.length; // rotate which arm goes first
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    const epochs = await Promise.all(arms[i]!.sessions.map((s) => s.trainEpoch()));
    const t = totals[i]!;
    t.wallMs += performance.now() - started;
    const cpu = process.cpuUsage(cpuBefore);
    t.cpuMs += (cpu.user + cpu.system) / 1000;
    for (const epoch of epochs) {
      t.samples += epoch.samples;
      for (const p of epoch.results) {
        t.kernelMs += p.kernelMs ?? 0;
        t.busyMs += p.elapsedMs - p.waitedMs;
        t.waitedMs += p.waitedMs;
        for (const [name, ms] of Object.entries(p.kernelMsByName ?? {})) t.byKernel.set(name, (t.byKernel.get(name) ?? 0) + ms);
      }
    }
  }
}
for (const arm of arms) for (const s of arm.sessions) s.close();

const per1000 = (ms: number, samples: number) => ((ms / samples) * 1000).toFixed(2).padStart(7);
console.log(`${algo}, mlp:784-256-128-10, batch ${batch}, ${rounds} alternating epochs each; ms per 1000 samples, summed over workers`);
console.log(`  workers  samples/s   kernels  outside kernels  blocked   CPU (process)`);
totals.forEach((t, i) =>
  console.log(
    `  ${arms[i]!.label.padStart(7)}  ${((t.samples / t.wallMs) * 1000).toFixed(0).padStart(9)}  ${per1000(t.kernelMs, t.samples)}  ${per1000(t.busyMs - t.kernelMs, t.samples).padStart(15)}  ${per1000(t.waitedMs, t.samples)}  ${per1000(t.cpuMs, t.samples).padStart(14)}`,
  ),
);
const [one, two, cap] = totals as [(typeof totals)[0], (typeof totals)[0], (typeof totals)[0]];
const perSample = (t: typeof one, ms: number) => ms / t.samples;
console.log(
  `  CPU per sample 2w/1w ${(perSample(two, two.cpuMs) / perSample(one, one.cpuMs)).toFixed(2)}, 2w/(2 × 1w) ${(perSample(two, two.cpuMs) / perSample(cap, cap.cpuMs)).toFixed(2)}; cores used ${totals.map((t, i) => `${(t.cpuMs / t.wallMs).toFixed(2)} (${arms[i]!.label})`).join(", ")}`,
);
console.log(`  kernel by kernel, ms per 1000 samples summed over workers, largest first; 2w against 1w and against 2 × 1w:`);
console.log(`    ${"kernel".padEnd(22)} ${"1".padStart(7)} ${"2".padStart(7)} ${"2 × 1".padStart(7)}   2w/1w  2w/(2 × 1w)`);
const ratio = (a: number, b: number) => (b > 0 ? (a / b).toFixed(2).padStart(6) : "   new");
for (const [name, ms] of [...two.byKernel].sort((a, b) => b[1] - a[1])) {
  const [m1, m2, mc] = [perSample(one, one.byKernel.get(name) ?? 0), perSample(two, ms), perSample(cap, cap.byKernel.get(name) ?? 0)];
  if (m2 < 1e-6 && m1 < 1e-6) continue;
  console.log(`    ${name.padEnd(22)} ${per1000(m1, 1)} ${per1000(m2, 1)} ${per1000(mc, 1)}  ${ratio(m2, m1)}  ${ratio(m2, mc)}`);
}
