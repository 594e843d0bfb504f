/**
 * One `skein train … --json` process as a user runs it, and what the user-facing benches read off it:
 * the summary's samples/s, the CPU the whole process used, its wall time and each epoch's samples/s.
 */
import { join } from "node:path";
import type { UserConfig } from "./user-configs.ts";

export const MAIN = join(import.meta.dir, "..", "engine", "cli", "main.ts");

export interface Run {
  rate: number;
  /** Training samples done (samples/s × training seconds). */
  samples: number;
  /** CPU milliseconds, user + system, of the whole process. */
  cpuMs: number;
  /** Wall milliseconds from spawn to exit. */
  wallMs: number;
  /** Samples/s of each epoch (the epoch lines on stderr), in order. */
  epochRates: number[];
}

export interface RunOptions {
  data: string;
  epochs: number;
  /** The checkout's CLI entry (another checkout's, for paired comparisons). */
  main?: string;
  env?: Record<string, string>;
}

/** Start one `skein train --json` process on the mlp; resolves to its figures, or rejects with its last stderr line. */
export function startTrain(config: UserConfig, workers: number, { data, epochs, main = MAIN, env }: RunOptions): Promise<Run> {
  const argv = [process.execPath, main, "train", "--model", "mlp:784-256-128-10", "--data", data, "--epochs", String(epochs), "--workers", String(workers), "--json", ...config.args];
  const started = performance.now();
  const proc = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe", env: env ? { ...process.env, ...env } : undefined });
  return (async () => {
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    const wallMs = performance.now() - started;
    if (code !== 0) throw new Error(`${argv.slice(2).join(" ")} exited ${code}: ${err.trim().split("\n").at(-1)}`);
    const summary = JSON.parse(out.trim().split("\n").at(-1)!) as { samplesPerSec: number; trainSeconds: number };
    const cpu = proc.resourceUsage()?.cpuTime;
    const cpuMs = cpu ? Number(cpu.user + cpu.system) / 1000 : NaN;
    // "epoch 3/5  train loss …  91.2k samples/s" (formatRate: k for thousands); not the progress lines
    // ("epoch 3/5 75%  …"), which a process prints when an epoch outlasts the progress interval.
    const epochRates = [...err.matchAll(/^epoch \d+\/\d+  train loss .*?([\d.]+)(k?) samples\/s/gm)].map((m) => Number(m[1]) * (m[2] === "k" ? 1000 : 1));
    return { rate: summary.samplesPerSec, samples: summary.samplesPerSec * summary.trainSeconds, cpuMs, wallMs, epochRates };
  })();
}

/** Two runs side by side as one: summed samples/s and samples, summed CPU, the longer wall time. */
export const together = (a: Run, b: Run): Run => ({
  rate: a.rate + b.rate,
  samples: a.samples + b.samples,
  cpuMs: a.cpuMs + b.cpuMs,
  wallMs: Math.max(a.wallMs, b.wallMs),
  epochRates: a.epochRates.map((x, i) => x + (b.epochRates[i] ?? NaN)),
});

/** The capacity: two independent 1-worker processes started together, as one run. */
export async function capacityRun(config: UserConfig, options: RunOptions): Promise<Run> {
  const [a, b] = await Promise.all([startTrain(config, 1, options), startTrain(config, 1, options)]);
  return together(a, b);
}
