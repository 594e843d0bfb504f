/**
 * Whether a switch the engine reads from its environment, or a change against another checkout, shortens
 * a run as a user waits for it: the whole process's wall time, spawn to exit, not only the measured
 * training window.
 *
 *   npx bun bench/user-wall.ts --env SKEIN_WARM_UP=0 [--rounds 10] [--workers 2] [--epochs 5] [--only sync128,hogwild]
 *   npx bun bench/user-wall.ts --env SKEIN_IDLE_COMPILER=0 --args="--algo pipedream --stages 2 --batch 64"
 *   npx bun bench/user-wall.ts --against /path/to/other/checkout [--only sync128]   # "with": this checkout, "without": that one
 *
 * --args runs one configuration of your own (`skein train` arguments beyond the epochs and workers;
 * the mlp on the embedded digits unless they name a --model or --data) instead of the named ones.
 *
 * Each round, for each configuration, two fresh `skein train --json` processes back to back, one with
 * the variables of --env set and one without (with --against: one of this checkout, one of the other,
 * built, checkout), their order swapped every round so that neither always
 * runs first on a shared machine. Only the processes being compared run (no capacity runs, unlike
 * user-scaling.ts), so many pairs fit in a short locked run: on a 2-core machine other jobs load, a
 * single pair swings by ±100 ms, and the median of the per-pair differences is what can resolve a
 * change of 10–40 ms.
 *
 * Printed per configuration and arm: medians of the wall time, the training window (the summary's
 * training seconds), epoch 0 (from its epoch line), and the time outside the window (start-up,
 * evaluations, exit); then the per-pair difference (with --env minus without) of each, its median and
 * in how many pairs it was negative. A change that moves work out of the window shortens epoch 0 and
 * the window but not the wall. Then samples/s, as the per-pair ratio (with / without) and in how many
 * pairs it was above 1, and, on Linux, the milliseconds the run's worker threads spent runnable but
 * not running (their run-queue wait, /proc/PID/task/TID/schedstat, read every 50 ms while the process
 * lives): what preempts the workers, whoever does. Load averages are printed at the start and the end.
 */
import { loadavg } from "node:os";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { benchArgs, numberFlag } from "./args.ts";
import { threadsOf, WORKER_THREAD } from "../engine/runtime/thread-stats.ts";
import { envFlag, selectConfigs } from "./user-configs.ts";

const SCRIPT = "user-wall";
const { values: v } = benchArgs(SCRIPT, {
  options: {
    env: { type: "string" },
    rounds: { type: "string" },
    workers: { type: "string" },
    epochs: { type: "string" },
    only: { type: "string" },
    args: { type: "string" },
    against: { type: "string" },
  },
});
const rounds = numberFlag(SCRIPT, "rounds", v.rounds, 10, { min: 1, max: 1000, integer: true });
const workers = numberFlag(SCRIPT, "workers", v.workers, 2, { min: 1, max: 256, integer: true });
const epochs = numberFlag(SCRIPT, "epochs", v.epochs, 5, { min: 1, max: 1000, integer: true });
if ((v.env === undefined) === (v.against === undefined)) {
  console.error(`${SCRIPT}: give one of --env NAME=VALUE[,NAME=VALUE…] (this checkout with those variables set) or --against DIR (another checkout), the arm compared against the plain one`);
  process.exit(2);
}
const env = v.env !== undefined ? envFlag(SCRIPT, v.env) : {};
const MAIN = join(import.meta.dir, "..", "engine", "cli", "main.ts");
/** The "without" arm's entry point: this checkout's, or with --against the other one's. */
const PLAIN_MAIN = v.against !== undefined ? join(resolve(v.against), "engine", "cli", "main.ts") : MAIN;
if (!existsSync(PLAIN_MAIN)) {
  console.error(`${SCRIPT}: --against ${v.against}: no skein checkout there (${PLAIN_MAIN} is missing)`);
  process.exit(2);
}
const WITH = v.env !== undefined ? `--env ${v.env}` : `this checkout (without: ${v.against})`;

const configs = v.args !== undefined ? [{ name: "custom", args: v.args.split(/\s+/).filter(Boolean) }] : selectConfigs(SCRIPT, v.only);

interface Run {
  wallMs: number;
  trainMs: number;
  epoch0Ms: number;
  samplesPerSec: number;
  /** Run-queue wait of the process's worker threads, summed (NaN where /proc has none to read). */
  workerWaitMs: number;
}

/** Record the run-queue wait (ms) of each thread of `pid` named like a worker, as /proc shows it now. */
function workerWaits(pid: number, into: Map<number, number>): void {
  for (const t of threadsOf(pid)) if (t.name === WORKER_THREAD) into.set(t.tid, t.waitSeconds * 1000);
}

async function run(args: string[], main: string, extraEnv: Record<string, string> | null): Promise<Run> {
  // The mlp on the embedded digits unless the configuration names a model or data of its own (--args).
  const defaults = [...(args.includes("--model") ? [] : ["--model", "mlp:784-256-128-10"]), ...(args.includes("--data") ? [] : ["--data", "digits"])];
  const argv = [process.execPath, main, "train", ...defaults, "--epochs", String(epochs), "--workers", String(workers), "--json", ...args];
  const started = performance.now();
  const proc = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe", env: extraEnv ? { ...process.env, ...extraEnv } : undefined });
  const waits = new Map<number, number>(); // by thread id: a thread that ended keeps its last reading
  const poll = setInterval(() => workerWaits(proc.pid, waits), 50);
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  const wallMs = performance.now() - started;
  clearInterval(poll);
  if (code !== 0) throw new Error(`${argv.slice(2).join(" ")} exited ${code}: ${err.trim().split("\n").at(-1)}`);
  const summary = JSON.parse(out.trim().split("\n").at(-1)!) as { samplesPerSec: number; trainSeconds: number };
  // The epoch result lines ("epoch 1/5  train loss …  91.2k samples/s"), not the progress lines.
  const rates = [...err.matchAll(/^epoch \d+\/\d+  train loss .*?([\d.]+)(k?) samples\/s/gm)].map((m) => Number(m[1]) * (m[2] === "k" ? 1000 : 1));
  const perEpochSamples = (summary.samplesPerSec * summary.trainSeconds) / epochs;
  const workerWaitMs = waits.size > 0 ? [...waits.values()].reduce((a, b) => a + b, 0) : NaN;
  return { wallMs, trainMs: 1000 * summary.trainSeconds, epoch0Ms: (1000 * perEpochSamples) / rates[0]!, samplesPerSec: summary.samplesPerSec, workerWaitMs };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const load = () => loadavg().map((x) => x.toFixed(2)).join(", ");

const loadAtStart = load();
const results = new Map(configs.map((c) => [c.name, { plain: [] as Run[], with: [] as Run[] }]));
for (let r = 0; r < rounds; r++) {
  for (const c of configs) {
    const res = results.get(c.name)!;
    const arms = [async () => res.plain.push(await run(c.args, PLAIN_MAIN, null)), async () => res.with.push(await run(c.args, MAIN, env))];
    if (r % 2) arms.reverse();
    for (const arm of arms) await arm();
  }
}

console.log(`${v.args ?? "mlp:784-256-128-10 on digits"}, ${epochs} epochs, ${workers} workers, ${rounds} pairs of processes per configuration; load average ${loadAtStart} at the start, ${load()} at the end`);
console.log(`medians, ms: without → with ${WITH}; then per pair (with − without): median, and in how many pairs it was < 0`);
const rows: [string, (x: Run) => number][] = [
  ["whole wall", (x) => x.wallMs],
  ["training window", (x) => x.trainMs],
  ["epoch 0", (x) => x.epoch0Ms],
  ["outside window", (x) => x.wallMs - x.trainMs],
  ["workers' wait", (x) => x.workerWaitMs],
];
for (const c of configs) {
  const { plain, with: w } = results.get(c.name)!;
  for (const [name, f] of rows) {
    const d = w.map((x, i) => f(x) - f(plain[i]!));
    console.log(
      `  ${c.name.padEnd(8)} ${name.padEnd(16)} ${median(plain.map(f)).toFixed(0).padStart(5)} → ${median(w.map(f)).toFixed(0).padStart(5)}   Δ median ${median(d).toFixed(0).padStart(4)}, < 0 in ${d.filter((x) => x < 0).length}/${d.length}`,
    );
  }
  const ratios = w.map((x, i) => x.samplesPerSec / plain[i]!.samplesPerSec);
  console.log(
    `  ${c.name.padEnd(8)} ${"samples/s".padEnd(16)} ${median(plain.map((x) => x.samplesPerSec)).toFixed(0).padStart(5)} → ${median(w.map((x) => x.samplesPerSec)).toFixed(0).padStart(5)}   with / without: median ${median(ratios).toFixed(3)}, > 1 in ${ratios.filter((x) => x > 1).length}/${ratios.length}`,
  );
}
