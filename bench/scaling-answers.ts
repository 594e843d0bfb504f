/**
 * The answers of `skein experiment scaling`, from its folder:
 *
 *   npx bun engine/cli/main.ts experiment scaling --out runs/scaling
 *   npx bun bench/scaling-answers.ts runs/scaling [--target 0.9]
 *
 * 1. async: virtual training seconds to the target test accuracy (summed epochs until the first at or
 *    above it) per P, and layerwise over hogwild / lap (the paper reports up to 2.97× for LPAP-SGD);
 * 2. pipelines: samples/s per D and each schedule over GPipe; the bubble the simulation shows
 *    (1 − mean busy fraction of the stages) beside the schedule simulator's for F = 1, B = 2;
 * 3. gossip: seconds per epoch of dmsgd and decentlam over pmsgd's (all-reduce) per n and network.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { gpipe, oneFOneB, asyncOneFOneB } from "../engine/algorithms/pipeline/schedule.ts";
import { simulate } from "../engine/algorithms/pipeline/simulate.ts";
import type { ResultRow } from "../engine/experiments/run.ts";
import type { EpochMetrics } from "../engine/run-metrics.ts";
import { benchArgs, numberFlag } from "./args.ts";

const SCRIPT = "scaling-answers";
const { values: flags, positionals } = benchArgs(SCRIPT, { options: { target: { type: "string" } }, allowPositionals: true });
const TARGET = numberFlag(SCRIPT, "target", flags.target, 0.9, { min: 0, max: 1 });
const dir = positionals[0];
if (!dir) {
  console.error(`${SCRIPT}: give the experiment folder (skein experiment scaling --out DIR)`);
  process.exit(2);
}
const rows = JSON.parse(readFileSync(join(dir, "results.json"), "utf8")) as ResultRow[];
const metrics = (r: ResultRow): EpochMetrics[] =>
  readFileSync(join(dir, r.runDir, "metrics.jsonl"), "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as EpochMetrics);
const byLabel = new Map(rows.map((r) => [r.label, r]));
const fmt = (x: number | null | undefined, d = 3) => (x === null || x === undefined || !Number.isFinite(x) ? "-" : x.toFixed(d));

/** Virtual training seconds until the first epoch at or above the target, or Infinity. */
function timeToTarget(r: ResultRow | undefined): number {
  if (!r || r.diverged) return Infinity;
  let seconds = 0;
  for (const m of metrics(r)) {
    seconds += m.trainSeconds;
    if (m.testAccuracy >= TARGET) return seconds;
  }
  return Infinity;
}

console.log(`1. async: virtual seconds to ${(TARGET * 100).toFixed(0)}% test accuracy (final accuracy), and hogwild's and lap's time over layerwise's`);
console.log("P    sync            hogwild         lap 2 groups    layerwise 1F:1B  layerwise 1F:2B (P)   hogwild/lw1:1  lap/lw1:1  hogwild/lw1:2");
const ps = [...new Set(rows.filter((r) => r.label.startsWith("hogwild P=")).map((r) => Number(r.label.split("=")[1])))].sort((a, b) => a - b);
for (const P of ps) {
  const cell = (label: string) => {
    const r = [...byLabel.entries()].find(([l]) => l === label || (label.endsWith("*") && l.startsWith(label.slice(0, -1))))?.[1];
    return { r, t: timeToTarget(r) };
  };
  const sync = cell(`sync P=${P}`);
  const hog = cell(`hogwild P=${P}`);
  const lap = cell(`lap 2 groups P=${P}`);
  const lw11 = cell(`layerwise 1F:1B ×${P / 2} P=${P}`);
  const lw12 = rows.find((r) => r.label.startsWith("layerwise 1F:2B") && r.label.endsWith(`P=${3 * Math.max(1, Math.round(P / 4))}`) && P >= 4);
  const t12 = timeToTarget(lw12);
  const show = (c: { r: ResultRow | undefined; t: number }) => (c.r ? `${fmt(c.t)} (${fmt(c.r.testAccuracy, 3)})`.padEnd(16) : "-".padEnd(16));
  console.log(
    [String(P).padEnd(4), show(sync), show(hog), show(lap), show(lw11), (lw12 ? `${fmt(t12)} (${fmt(lw12.testAccuracy, 3)}) P=${lw12.workers}` : "-").padEnd(21), fmt(hog.t / lw11.t, 2).padStart(13), fmt(lap.t / lw11.t, 2).padStart(10), fmt(hog.t / t12, 2).padStart(14)].join(" "),
  );
}

console.log("\n2. pipelines: samples/s (virtual), over GPipe's, and the bubble: simulated (1 − mean busy) vs the schedule simulator (F = 1, B = 2)");
console.log("D   schedule    samples/s   ×gpipe  accuracy  bubble sim  bubble schedule");
const depths = [...new Set(rows.filter((r) => r.label.startsWith("gpipe D=")).map((r) => Number(r.label.split("=")[1])))].sort((a, b) => a - b);
for (const D of depths) {
  const g = byLabel.get(`gpipe D=${D}`)!;
  for (const algo of ["gpipe", "1f1b", "pipedream", "pipeoptim"]) {
    const r = byLabel.get(`${algo} D=${D}`);
    if (!r) continue;
    if (r.diverged !== undefined) {
      console.log(`${String(D).padEnd(3)} ${algo.padEnd(11)} diverged`);
      continue;
    }
    const last = metrics(r).at(-1)!;
    const bubble = 1 - last.busy.reduce((a, b) => a + b, 0) / last.busy.length;
    const M = 8;
    const schedule = algo === "gpipe" ? gpipe(D, M) : algo === "1f1b" ? oneFOneB(D, M) : asyncOneFOneB(D, M);
    const predicted = simulate(schedule, { f: 1, b: 2 }).bubbleFraction;
    console.log([String(D).padEnd(3), algo.padEnd(11), fmt(r.samplesPerSec, 0).padStart(10), fmt(r.samplesPerSec! / g.samplesPerSec!, 2).padStart(8), fmt(r.testAccuracy, 3).padStart(9), fmt(bubble, 3).padStart(11), fmt(predicted, 3).padStart(16)].join(" "));
  }
}

console.log("\n3. gossip: virtual seconds per epoch, and over pmsgd's (ring all-reduce)");
console.log("network  n    pmsgd s   dmsgd ring  decentlam ring  dmsgd exp  decentlam exp   (×pmsgd)                  accuracy pmsgd/dmsgd ring/decentlam ring");
const networks = [...new Set(rows.filter((r) => r.algo === "pmsgd").map((r) => r.label.split(" ").at(-1)!))];
for (const net of networks) {
  const ns = [...new Set(rows.filter((r) => r.algo === "pmsgd" && r.label.endsWith(net)).map((r) => Number(r.label.split("n=")[1]!.split(" ")[0])))].sort((a, b) => a - b);
  for (const n of ns) {
    const perEpoch = (label: string) => {
      const r = byLabel.get(label);
      return r && r.diverged === undefined ? { r, s: metrics(r).reduce((a, m) => a + m.trainSeconds, 0) / r.epochs } : null;
    };
    const p = perEpoch(`pmsgd n=${n} ${net}`)!;
    const others = ["dmsgd ring", "decentlam ring", "dmsgd symmetric-exponential", "decentlam symmetric-exponential"].map((a) => perEpoch(`${a} n=${n} ${net}`));
    const ratios = others.map((o) => (o ? fmt(o.s / p.s, 2) : "-")).join(" ");
    console.log(
      [net.padEnd(8), String(n).padEnd(4), fmt(p.s, 4).padStart(8), ...others.map((o) => fmt(o?.s, 4).padStart(11)), `  (${ratios})`.padEnd(26), `${fmt(p.r.testAccuracy)}/${fmt(others[0]?.r.testAccuracy)}/${fmt(others[1]?.r.testAccuracy)}`].join(" "),
    );
  }
}
