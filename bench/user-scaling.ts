/**
 * Worker scaling as a user sees it: separate `skein train … --json` processes, samples/s from each
 * summary, against what the machine itself allows measured in the same run.
 *
 *   npx bun bench/user-scaling.ts [--rounds 3] [--epochs 5] [--data digits] [--only sync128,sync256,hogwild]
 *   npx bun bench/user-scaling.ts --scaling 1,4,8,16      # a many-core machine: the scaling curve
 *   npx bun bench/user-scaling.ts --against /path/to/other/checkout   # this checkout against another, paired
 *   npx bun bench/user-scaling.ts --env SKEIN_WARM_UP=0               # this checkout with and without a variable, paired
 *
 * Per configuration and round, three measurements, alternating so that drift of a shared machine
 * hits all of them alike:
 *   1w        one process, --workers 1
 *   2w        one process, --workers 2
 *   capacity  two independent 1-worker processes started together; their summed samples/s is what two
 *             cores give two independent jobs (on a machine whose two vCPUs share a physical core this
 *             is well under 2× one process)
 * and prints medians with the range over rounds, and the ratios 2w/1w, capacity/1w, 2w/capacity.
 * Then the same runs split into what the engine controls and what the machine gives: training samples
 * per CPU second of the whole process, and the cores each run got (its CPU seconds per wall second). On
 * a machine other jobs load, 2w/cap in samples/s can fall short while samples per CPU second match:
 * the scheduler then gave the 2-worker process fewer cores than the two 1-worker processes together.
 * Last, 2w/capacity epoch by epoch (from the epoch lines each process prints): the first epoch pays
 * for the JavaScript and WebAssembly tiers compiling, which two workers and a barrier feel more than
 * two independent processes do.
 *
 * With --against DIR (another checkout of skein, built): every round runs the measurements of both
 * checkouts, interleaved and rotated, so a change is measured against its base under the same drift
 * of a shared machine; the tables are printed for each. With --env NAME=VALUE[,NAME=VALUE…] the second
 * arm is this checkout again, its processes run with those variables set (a switch the engine reads
 * from its environment, measured on and off under the same drift). With two arms the last table pairs
 * them round by round: the second arm minus the first in 2w/cap, in the milliseconds 2w loses in epoch 0,
 * and in the 2-worker process's whole wall time (spawn to exit), which a change that only moves work out
 * of the measured window does not shorten.
 *
 * With --scaling N1,N2,…: one process per worker count per round, samples/s and the fraction of linear
 * scaling (rate(N) / (N · rate(first count))), for sync and hogwild (batch 64 per worker). Sync runs at
 * a global batch of 64 × the largest count: its blocks are cut from the batch alone (at most 64
 * samples each, so the weights do not depend on the worker count), and a batch of 128 has only two
 * blocks to share.
 */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { benchArgs, intListFlag, numberFlag } from "./args.ts";
import { median, withRange } from "./stats.ts";
import { envFlag, selectConfigs, USER_CONFIGS, type UserConfig } from "./user-configs.ts";
import { capacityRun, MAIN, startTrain, type Run } from "./user-runs.ts";

const SCRIPT = "user-scaling";
const { values: v } = benchArgs(SCRIPT, {
  options: {
    rounds: { type: "string" },
    epochs: { type: "string" },
    data: { type: "string" },
    only: { type: "string" },
    scaling: { type: "string" },
    against: { type: "string" },
    env: { type: "string" },
  },
});
const rounds = numberFlag(SCRIPT, "rounds", v.rounds, 3, { min: 1, max: 100, integer: true });
const epochs = numberFlag(SCRIPT, "epochs", v.epochs, 5, { min: 1, max: 1000, integer: true });
const data = v.data ?? "digits";
/** The arms measured: this checkout, and with --against another one or with --env this one with variables set. */
const CHECKOUTS: { label: string; main: string; env?: Record<string, string> }[] = [{ label: "this checkout", main: MAIN }];
if (v.against !== undefined && v.env !== undefined) {
  console.error(`${SCRIPT}: --against and --env: give one of them (the second arm is another checkout, or this one with variables set)`);
  process.exit(2);
}
if (v.env !== undefined) CHECKOUTS.push({ label: `--env ${v.env}`, main: MAIN, env: envFlag(SCRIPT, v.env) });
if (v.against !== undefined) {
  const main = join(resolve(v.against), "engine", "cli", "main.ts");
  if (!existsSync(main)) {
    console.error(`${SCRIPT}: --against ${v.against}: no skein checkout there (${main} is missing)`);
    process.exit(2);
  }
  CHECKOUTS.push({ label: `--against ${v.against}`, main });
}

const configs = selectConfigs(SCRIPT, v.only);

const start = (config: UserConfig, workers: number, main = MAIN, env?: Record<string, string>) => startTrain(config, workers, { data, epochs, main, env });

const spread = (xs: number[], digits = 0) => withRange(xs, digits);

if (v.scaling) {
  const counts = intListFlag(SCRIPT, "scaling", v.scaling);
  const syncBatch = 64 * Math.max(...counts);
  const curves: UserConfig[] = [{ name: `sync${syncBatch}`, args: ["--algo", "sync", "--batch", String(syncBatch)] }, USER_CONFIGS[2]!];
  const rates = new Map<string, number[]>();
  for (let r = 0; r < rounds; r++) {
    for (const c of curves) {
      for (const n of counts) {
        const key = `${c.name} ${n}`;
        rates.set(key, [...(rates.get(key) ?? []), (await start(c, n)).rate]);
      }
    }
  }
  console.log(`mlp:784-256-128-10 on ${data}, ${epochs} epochs, one process per run, ${rounds} rounds; samples/s median [min–max]`);
  for (const c of curves) {
    const one = median(rates.get(`${c.name} ${counts[0]}`)!) / counts[0]!;
    for (const n of counts) {
      const xs = rates.get(`${c.name} ${n}`)!;
      console.log(`  ${c.name.padEnd(8)} ${String(n).padStart(3)} workers  ${spread(xs).padEnd(26)} ${(median(xs) / (n * one)).toFixed(2)}× linear`);
    }
  }
  process.exit(0);
}

type Runs = { one: Run[]; two: Run[]; capacity: Run[] };
const results = new Map<string, Runs>(); // key: checkout label + config name
const key = (checkout: string, config: string) => `${checkout} ${config}`;
for (const k of CHECKOUTS) for (const c of configs) results.set(key(k.label, c.name), { one: [], two: [], capacity: [] });
for (let r = 0; r < rounds; r++) {
  for (const c of configs) {
    // Rotate which measurement goes first, so none always runs on a warmer or colder machine.
    const measurements = CHECKOUTS.flatMap(({ label, main, env }) => {
      const res = results.get(key(label, c.name))!;
      return [
        async () => res.one.push(await start(c, 1, main, env)),
        async () => res.two.push(await start(c, 2, main, env)),
        async () => res.capacity.push(await capacityRun(c, { data, epochs, main, env })),
      ];
    });
    for (let i = 0; i < measurements.length; i++) await measurements[(i + r) % measurements.length]!();
    for (const { label } of CHECKOUTS) {
      const res = results.get(key(label, c.name))!;
      const tag = CHECKOUTS.length > 1 ? ` (${label})` : "";
      console.error(`round ${r + 1}/${rounds} ${c.name}${tag}: 1w ${res.one.at(-1)!.rate.toFixed(0)}  2w ${res.two.at(-1)!.rate.toFixed(0)}  capacity ${res.capacity.at(-1)!.rate.toFixed(0)}`);
    }
  }
}

// Ratios of medians, and in brackets the range of the per-round ratios (each round's three runs are adjacent in time).
const perRound = (a: number[], b: number[]) => a.map((x, i) => x / b[i]!);
const ratio = (a: number[], b: number[]) => `${(median(a) / median(b)).toFixed(2)} [${Math.min(...perRound(a, b)).toFixed(2)}–${Math.max(...perRound(a, b)).toFixed(2)}]`;
const rates = (runs: Run[]) => runs.map((x) => x.rate);
// Samples/s is CPU efficiency (samples per CPU second, which the engine controls) times the cores the
// run was given (CPU seconds per wall second, which a loaded machine's scheduler decides). Whole
// process, start to exit: start-up and evaluation are in both, alike for every configuration.
const perCpuSecond = (runs: Run[]) => runs.map((x) => (x.samples / x.cpuMs) * 1000);
const cores = (runs: Run[]) => runs.map((x) => x.cpuMs / x.wallMs);
for (const { label } of CHECKOUTS) {
  const of = (c: UserConfig) => results.get(key(label, c.name))!;
  if (CHECKOUTS.length > 1) console.log(`\n${label}`);
  console.log(`mlp:784-256-128-10 on ${data}, ${epochs} epochs, separate processes as a user runs them, ${rounds} rounds; samples/s median [min–max]`);
  console.log(`  ${"config".padEnd(8)}  ${"1 worker".padEnd(22)} ${"2 workers".padEnd(22)} ${"capacity (2 × 1w procs)".padEnd(24)} 2w/1w  cap/1w  2w/cap`);
  for (const c of configs) {
    const { one, two, capacity } = of(c);
    console.log(`  ${c.name.padEnd(8)}  ${spread(rates(one)).padEnd(22)} ${spread(rates(two)).padEnd(22)} ${spread(rates(capacity)).padEnd(24)} ${ratio(rates(two), rates(one))}  ${ratio(rates(capacity), rates(one))}  ${ratio(rates(two), rates(capacity))}`);
  }
  console.log(`CPU of the whole process: training samples per CPU second, and cores used (CPU s / wall s); median [min–max]`);
  console.log(`  ${"config".padEnd(8)}  ${"1w samples/CPU-s".padEnd(22)} ${"2w samples/CPU-s".padEnd(22)} ${"cap samples/CPU-s".padEnd(24)} 2w/1w  2w/cap   cores 1w, 2w, cap`);
  for (const c of configs) {
    const { one, two, capacity } = of(c);
    const [e1, e2, ec] = [perCpuSecond(one), perCpuSecond(two), perCpuSecond(capacity)];
    const used = [one, two, capacity].map((runs) => median(cores(runs)).toFixed(2)).join(", ");
    console.log(`  ${c.name.padEnd(8)}  ${spread(e1).padEnd(22)} ${spread(e2).padEnd(22)} ${spread(ec).padEnd(24)} ${ratio(e2, e1)}  ${ratio(e2, ec)}   ${used}`);
  }
  console.log(`2w/capacity epoch by epoch (ratio of the medians over rounds of each epoch's samples/s)`);
  for (const c of configs) {
    const { two, capacity } = of(c);
    const perEpoch = Array.from({ length: epochs }, (_, e) => (median(two.map((x) => x.epochRates[e] ?? NaN)) / median(capacity.map((x) => x.epochRates[e] ?? NaN))).toFixed(2));
    console.log(`  ${c.name.padEnd(8)}  ${perEpoch.join("  ")}`);
  }
  // Where the 2-worker run's time goes against capacity: per round, each epoch's training seconds
  // beyond what the capacity's rate in that epoch would take for the same samples; the overall figure
  // (training seconds beyond samples / capacity's overall rate) differs from their sum by how the
  // summed rates of two processes weight the epochs. Outside: the process's wall time outside the
  // measured window (start-up, evaluation, exit), which samples/s does not see but a user waits for.
  console.log(`2w milliseconds lost against capacity, median over rounds: per epoch, overall, overall − Σ epochs; 2w training ms; wall ms (2w, cap); outside the window (2w, 1w)`);
  for (const c of configs) {
    const { one, two, capacity } = of(c);
    const lost = two.map((t, i) => {
      const cap = capacity[i]!;
      const perEpochSamples = t.samples / t.epochRates.length;
      const epochs = t.epochRates.map((r, e) => 1000 * (perEpochSamples / r - perEpochSamples / cap.epochRates[e]!));
      const overall = 1000 * (t.samples / t.rate - t.samples / cap.rate);
      return { epochs, overall, weighting: overall - epochs.reduce((a, b) => a + b, 0) };
    });
    const perEpoch = Array.from({ length: epochs }, (_, e) => median(lost.map((l) => l.epochs[e] ?? NaN)).toFixed(0));
    const trainMs = (runs: Run[]) => runs.map((x) => (1000 * x.samples) / x.rate);
    const outside = (runs: Run[]) => runs.map((x, i) => x.wallMs - trainMs(runs)[i]!);
    console.log(
      `  ${c.name.padEnd(8)}  ${perEpoch.join("  ")}  | ${median(lost.map((l) => l.overall)).toFixed(0)}  ${median(lost.map((l) => l.weighting)).toFixed(0)}` +
        `  | ${median(trainMs(two)).toFixed(0)}  | ${median(two.map((x) => x.wallMs)).toFixed(0)}, ${median(capacity.map((x) => x.wallMs)).toFixed(0)}  | ${median(outside(two)).toFixed(0)}, ${median(outside(one)).toFixed(0)}`,
    );
  }
}

// Two arms: round by round, the second arm minus the first (each round's six measurements are adjacent
// in time, so the machine's drift cancels in the difference more than in the medians above).
if (CHECKOUTS.length === 2) {
  const [a, b] = CHECKOUTS.map((k) => k.label) as [string, string];
  console.log(`\npaired by round, (${b}) − (${a}): each round's difference, then the median`);
  const epoch0Lost = (runs: Runs) => runs.two.map((t, i) => {
    const perEpochSamples = t.samples / t.epochRates.length;
    return 1000 * (perEpochSamples / t.epochRates[0]! - perEpochSamples / runs.capacity[i]!.epochRates[0]!);
  });
  const twoOverCap = (runs: Runs) => runs.two.map((t, i) => t.rate / runs.capacity[i]!.rate);
  const twoWall = (runs: Runs) => runs.two.map((t) => t.wallMs);
  const rows: [string, (runs: Runs) => number[], number][] = [
    ["2w/cap", twoOverCap, 3],
    ["epoch-0 ms lost", epoch0Lost, 0],
    ["2w wall ms", twoWall, 0],
  ];
  for (const c of configs) {
    const [ra, rb] = [results.get(key(a, c.name))!, results.get(key(b, c.name))!];
    for (const [name, f, digits] of rows) {
      const [xa, xb] = [f(ra), f(rb)];
      const d = xb.map((x, i) => x - xa[i]!);
      const fewer = d.filter((x) => x < 0).length;
      console.log(`  ${c.name.padEnd(8)} ${name.padEnd(16)} ${median(xa).toFixed(digits).padStart(7)} → ${median(xb).toFixed(digits).padStart(7)}   Δ ${d.map((x) => (x >= 0 ? "+" : "") + x.toFixed(digits)).join(" ")}   median Δ ${median(d).toFixed(digits)}, Δ < 0 in ${fewer}/${d.length}`);
    }
  }
}
