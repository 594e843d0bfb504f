/**
 * Where a run's time goes, 1 worker against 2, in one process: kernel time, busy time outside kernels
 * (TypeScript bookkeeping, batch gathering, queue and counter traffic) and time blocked in barriers or
 * queues, per 1000 samples summed over the workers; epochs of the two sessions alternate.
 *
 *   npx bun bench/profile.bench.ts [--algo hogwild] [--batch 64] [--rounds 8] [--optimizer momentum]
 *
 * The optimizer defaults to the one `skein train` uses (momentum). Last, kernel by kernel: each kernel's
 * time per 1000 samples on 1 and on 2 workers and their ratio. A kernel that only streams memory the
 * other worker has just written (the optimizer's update of shared weights and state) shows the cost of
 * cache lines moving between cores far more plainly than the GEMMs do.
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
const sessions = [await TrainingSession.open(config(1), { profileKernels: true }), await TrainingSession.open(config(2), { profileKernels: true })];
const totals = sessions.map(() => ({ wallMs: 0, cpuMs: 0, kernelMs: 0, busyMs: 0, waitedMs: 0, samples: 0, byKernel: new Map<string, number>() }));
for (let r = 0; r < rounds; r++) {
  for (const i of r % 2 ? [0, 1] : [1, 0]) {
    const cpuBefore = process.cpuUsage();
    const epoch = await sessions[i]!.trainEpoch();
    const cpu = process.cpuUsage(cpuBefore);
    const t = totals[i]!;
    t.wallMs += epoch.seconds * 1000;
    t.cpuMs += (cpu.user + cpu.system) / 1000;
    t.samples += epoch.samples;
    for (const p of epoch.results) {
      t.kernelMs += p.kernelMs ?? 0;
      t.busyMs += p.elapsedMs - p.waitedMs;
      t.waitedMs += p.waitedMs;
      for (const [name, ms] of Object.entries(p.kernelMsByName ?? {})) t.byKernel.set(name, (t.byKernel.get(name) ?? 0) + ms);
    }
  }
}
for (const s of sessions) s.close();

const per1000 = (ms: number, samples: number) => ((ms / samples) * 1000).toFixed(2).padStart(7);
console.log(`${algo}, mlp:784-256-128-10, batch ${batch}, ${rounds} alternating epochs each; ms per 1000 samples, summed over workers`);
console.log(`  workers  samples/s   kernels  outside kernels  blocked   CPU (process)`);
totals.forEach((t, i) =>
  console.log(
    `  ${String(i + 1).padStart(7)}  ${((t.samples / t.wallMs) * 1000).toFixed(0).padStart(9)}  ${per1000(t.kernelMs, t.samples)}  ${per1000(t.busyMs - t.kernelMs, t.samples).padStart(15)}  ${per1000(t.waitedMs, t.samples)}  ${per1000(t.cpuMs, t.samples).padStart(14)}`,
  ),
);
const [one, two] = totals as [(typeof totals)[0], (typeof totals)[0]];
console.log(
  `  CPU per sample 2w/1w ${(two.cpuMs / two.samples / (one.cpuMs / one.samples)).toFixed(2)}; cores used ${(one.cpuMs / one.wallMs).toFixed(2)} (1w), ${(two.cpuMs / two.wallMs).toFixed(2)} (2w)`,
);
console.log(`  kernel by kernel, ms per 1000 samples summed over workers (1w → 2w, ratio), largest first:`);
for (const [name, ms] of [...two.byKernel].sort((a, b) => b[1] - a[1])) {
  const before = one.byKernel.get(name) ?? 0;
  if (ms / two.samples < 0.001 && before / one.samples < 0.001) continue;
  console.log(`    ${name.padEnd(22)} ${per1000(before, one.samples)} → ${per1000(ms, two.samples)}  ${before > 0 ? ((ms / two.samples) / (before / one.samples)).toFixed(2) : "new"}`);
}
