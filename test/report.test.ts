/**
 * The HTML report: built from real run folders (tiny runs of four algorithm families) and from an
 * experiment folder; one self-contained document with a chart per expected figure; bad folders and
 * files give a UserError naming them. The SVG builders are checked on their own too.
 */
import { beforeAll, describe, expect, spyOn, test } from "bun:test";
import { cpSync, existsSync, readFileSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { writeSafetensors } from "../engine/checkpoint/safetensors.ts";
import { join } from "node:path";
import { UserError } from "../engine/errors.ts";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import { train, type TrainConfig } from "../engine/train.ts";
import { buildReport, loadFolders } from "../engine/report/report.ts";
import { barChart, escapeXml, ganttChart, lineChart, niceTicks, textWidth } from "../engine/report/svg.ts";
import { SCHEDULES } from "../engine/algorithms/pipeline/schedule.ts";
import { simulate } from "../engine/algorithms/pipeline/simulate.ts";
import { reportCommand, splitArgs } from "../engine/cli/report-command.ts";
import { tempFolders } from "./tempdir.ts";

// Property tests and end-to-end runs need more than Bun's 5 s on a busy machine (see test/setup.ts).

const folder = tempFolders("skein-report-");

const base: TrainConfig = {
  algo: "sync",
  model: "mlp:784-16-10",
  data: "synthetic:200",
  epochs: 2,
  batch: 32,
  workers: 1,
  executor: "threads",
  seed: 1,
  optimizer: defaultOptimizer("momentum"),
};

const CONFIGS: Record<string, TrainConfig> = {
  sync: base,
  layerwise: { ...base, algo: "layerwise" },
  decentlam: { ...base, algo: "decentlam", workers: 2, gossip: { nodes: 4 } },
  pipeoptim: { ...base, algo: "pipeoptim", model: "mlp:784-32-16-10", pipeline: { stages: 2, microbatches: 2 } },
};

const runs: Record<string, string> = {};
let html = "";

beforeAll(async () => {
  for (const [name, config] of Object.entries(CONFIGS)) {
    runs[name] = join(folder(), name);
    await train(config, { out: runs[name] });
  }
  html = await buildReport(Object.values(runs));
}, 60_000);

/** Every <svg>…</svg> of a document. */
const svgsOf = (doc: string) => doc.match(/<svg[\s\S]*?<\/svg>/g) ?? [];
const titleOf = (svg: string) => /<title>([^<]*)<\/title>/.exec(svg)?.[1] ?? "";
const pathDs = (svg: string) => [...svg.matchAll(/<path[^>]*\sd="([^"]*)"/g)].map((m) => m[1]!);
const rectCount = (svg: string) => (svg.match(/<rect /g) ?? []).length;

async function userError(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(UserError);
    return (e as Error).message;
  }
  throw new Error("expected a UserError");
}

describe("buildReport on four run folders", () => {
  test("is one self-contained HTML document", () => {
    expect(html.startsWith("<!DOCTYPE html>")).toBe(true);
    expect(html.match(/<html/g)?.length).toBe(1);
    expect(html.match(/<\/html>/g)?.length).toBe(1);
    expect(html.match(/<body/g)?.length).toBe(1);
    expect(html).not.toContain("<script");
    expect(html).not.toContain("<link");
    expect(html).not.toContain("@import");
    const external = html.replaceAll('xmlns="http://www.w3.org/2000/svg"', "");
    expect(external).not.toContain("http://");
    expect(external).not.toContain("https://");
  });

  test("has a table row per run with its algorithm and final accuracy", () => {
    for (const name of Object.keys(CONFIGS)) expect(html).toContain(`<td>${name}</td>`);
    expect(html).toMatch(/<td>\d+\.\d\d%<\/td>/);
  });

  test("has an SVG per expected chart, each with a title and non-empty paths or rects", () => {
    const svgs = svgsOf(html);
    const titles = svgs.map(titleOf);
    const expected = [
      "Test accuracy vs epoch",
      "Test accuracy vs wall time",
      "Train loss vs epoch",
      "layerwise: staleness",
      "Consensus distance",
      "pipeoptim: weight inconsistency per stage",
      "pipeoptim: async-1f1b schedule, 2 stages × 2 microbatches (simulated)",
    ];
    for (const t of expected) expect(titles.some((x) => x.startsWith(escapeXml(t)))).toBe(true);
    expect(svgs.length).toBe(expected.length);
    for (const svg of svgs) {
      const ds = pathDs(svg);
      expect(ds.length).toBeGreaterThan(0);
      for (const d of ds) expect(d).toMatch(/^M[\d.-]+ [\d.-]+/);
    }
    // Line charts draw one series path per run that has the metric.
    const byTitle = (t: string) => svgs.find((s) => titleOf(s).startsWith(escapeXml(t)))!;
    expect(byTitle("Test accuracy vs epoch").match(/class="series"/g)?.length).toBe(4);
    expect(byTitle("Consensus distance").match(/class="series"/g)?.length).toBe(1);
    // Staleness: a rect per bin shown (≥ 8) plus background; the schedule: a rect per action (2 stages × 2 microbatches × F, B).
    expect(rectCount(byTitle("layerwise: staleness"))).toBeGreaterThanOrEqual(9);
    expect((byTitle("pipeoptim: async-1f1b").match(/<rect [^>]*><title>stage/g) ?? []).length).toBe(8);
  });

  test("staleness histogram bars sum to the last epoch's applied updates over all layers", () => {
    const lines = readFileSync(join(runs.layerwise!, "metrics.jsonl"), "utf8").trim().split("\n");
    const last = JSON.parse(lines[lines.length - 1]!);
    const applied = last.staleness.reduce((a: number, l: { applied: number }) => a + l.applied, 0);
    const svg = svgsOf(html).find((s) => titleOf(s).startsWith("layerwise: staleness"))!;
    const counts = [...svg.matchAll(/<title>\d+\+?: ([\d.e]+)<\/title>/g)].map((m) => Number(m[1]));
    expect(counts.reduce((a, b) => a + b, 0)).toBe(applied);
  });
});

describe("experiment folders", () => {
  test("results.json rows bring in their run folders, labelled suite/label", async () => {
    const exp = folder();
    cpSync(runs.sync!, join(exp, "a"), { recursive: true });
    cpSync(runs.layerwise!, join(exp, "b"), { recursive: true });
    const rows = [
      { suite: "algos", label: "sync-1", algo: "sync", runDir: "a" },
      { suite: "algos", label: "lw-1", algo: "layerwise", runDir: join(exp, "b") },
    ];
    writeFileSync(join(exp, "results.json"), JSON.stringify(rows));
    const doc = await buildReport([exp]);
    expect(doc).toContain("algos/sync-1");
    expect(doc).toContain("algos/lw-1");
    expect(titleOfAll(doc)).toContain("algos/lw-1: staleness");
  });

  test("diverged runs (no summary) are listed, not charted", async () => {
    const exp = folder();
    cpSync(runs.sync!, join(exp, "a"), { recursive: true });
    const rows = [
      { suite: "s", label: "ok", runDir: "a" },
      { suite: "s", label: "boom", runDir: "b", diverged: "training diverged in epoch 1 (loss NaN): lower --lr" },
    ];
    writeFileSync(join(exp, "results.json"), JSON.stringify(rows));
    const doc = await buildReport([exp]);
    expect(doc).toContain("Diverged (counted in n, not charted past where they stopped): s/boom (training diverged in epoch 1");
    // Counted in the per-method table, absent from the per-run table of finished runs.
    expect(doc).toMatch(/s\/boom<\/td><td>1 <span class="diverged">\(1 diverged\)<\/span><\/td>/);
    const perRun = /<table class="runs">([\s\S]*?)<\/table>/.exec(doc)![1]!;
    expect(perRun.match(/<tr>/g)?.length).toBe(2); // the header and the one finished run
  });

  test("a row whose runDir does not exist names results.json", async () => {
    const exp = folder();
    writeFileSync(join(exp, "results.json"), JSON.stringify([{ suite: "s", label: "x", runDir: "missing" }]));
    expect(await userError(buildReport([exp]))).toContain(join(exp, "results.json"));
  });
});

const titleOfAll = (doc: string) => svgsOf(doc).map(titleOf);

/**
 * An experiment folder of copies of the sync run with known final accuracies: methods × seeds, each
 * run's last epoch (and summary) at the given accuracy, the first epoch at half of it.
 */
function craftExperiment(accuracies: Record<string, number[]>, meta: object): string {
  const exp = folder();
  const rows: object[] = [];
  for (const [label, accs] of Object.entries(accuracies)) {
    accs.forEach((acc, i) => {
      const runDir = `${label}-s${i + 1}`;
      cpSync(runs.sync!, join(exp, runDir), { recursive: true });
      const summary = JSON.parse(readFileSync(join(exp, runDir, "summary.json"), "utf8"));
      writeFileSync(join(exp, runDir, "summary.json"), JSON.stringify({ ...summary, testAccuracy: acc }));
      const epochs = readFileSync(join(exp, runDir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
      const last = epochs.length - 1;
      writeFileSync(join(exp, runDir, "metrics.jsonl"), epochs.map((e, k) => JSON.stringify({ ...e, testAccuracy: k === last ? acc : acc / 2, elapsedSeconds: k + 1 })).join("\n") + "\n");
      rows.push({ suite: "t", label, seed: i + 1, runDir });
    });
  }
  writeFileSync(join(exp, "results.json"), JSON.stringify(rows));
  writeFileSync(join(exp, "experiment.json"), JSON.stringify({ suite: "t", mode: "full", ...meta }));
  return exp;
}

describe("aggregated experiments", () => {
  const claims = [
    { text: "A beats B", metric: "finalAccuracy", a: "A", b: "B", relation: ">" },
    { text: "B beats A", metric: "finalAccuracy", a: "B", b: "A", relation: ">" },
    { text: "A reaches 80% before C", metric: "timeToTarget", a: "A", b: "C", relation: "<" },
  ];
  let doc = "";
  beforeAll(async () => {
    const exp = craftExperiment({ A: [0.9, 0.92, 0.94], B: [0.8, 0.83, 0.85], C: [0.9, 0.7, 0.95] }, { target: 0.8, claims });
    doc = await buildReport([exp]);
  });

  test("the claims come first, each with its verdict, then one row per method", () => {
    const claimsAt = doc.indexOf('<section id="claims">');
    const methodsAt = doc.indexOf('<section id="methods">');
    expect(claimsAt).toBeGreaterThan(0);
    expect(methodsAt).toBeGreaterThan(claimsAt);
    expect(doc.indexOf("<svg")).toBeGreaterThan(methodsAt);
    const verdicts = [...doc.matchAll(/<td class="verdict [a-z]+"[^>]*>([^<]*)</g)].map((m) => m[1]);
    // A − B = 0.1, 0.09, 0.09: the t-interval is far above 0. C: 2 of 3 pairs tie on time, 1 never reaches.
    expect(verdicts).toEqual(["holds", "does not hold", "inconclusive at n = 3"]);
    expect(doc).toContain("+9.33 pt");
    const methods = /<table class="methods">([\s\S]*?)<\/table>/.exec(doc)![1]!;
    expect(methods.match(/<tr>/g)!.length).toBe(4);
    // A: mean 92%, sd 2 pt, range 90–94%.
    expect(methods).toContain("t/A</td><td>3</td><td>92.00% ± 2.00 pt</td><td>90.00%–94.00%</td>");
    expect(methods).toContain("(2/3 reached)");
  });

  test("charts draw a mean line and a min–max band per method, and the target", () => {
    const acc = svgsOf(doc).find((s) => titleOf(s) === "Test accuracy vs epoch")!;
    expect(acc.match(/class="series"/g)!.length).toBe(3);
    expect(acc.match(/class="band"/g)!.length).toBe(3);
    expect(acc.match(/class="legend-entry"/g)!.length).toBe(3);
    expect(acc).toContain("band: min–max over seeds");
    expect(acc).toContain('class="target"');
    expect(acc).toContain("target 80.00%");
    // The per-run table is there, folded.
    expect(doc).toMatch(/<details><summary>Every run \(9\)<\/summary><table class="runs">/);
  });

  test("more methods than one chart tells apart: small multiples with shared axes", async () => {
    const many = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`m${i}`, [0.5 + i / 40]]));
    const d = await buildReport([craftExperiment(many, {})]);
    const panels = svgsOf(d).filter((s) => titleOf(s).startsWith("Test accuracy vs epoch"));
    expect(panels.length).toBe(2);
    expect(panels.map((p) => p.match(/class="legend-entry"/g)!.length)).toEqual([8, 4]);
    // Same y ticks in both panels.
    const ticks = (svg: string) => [...svg.matchAll(/text-anchor="end" font-size="11">([^<]*)</g)].map((m) => m[1]).join(",");
    expect(ticks(panels[0]!)).toBe(ticks(panels[1]!));
    // Colours restart in each panel (so a suite's groups colour their algorithms alike).
    const firstFill = (svg: string) => /class="legend-entry"[^>]*><rect [^>]*fill="([^"]*)"/.exec(svg)![1];
    expect(firstFill(panels[0]!)).toBe(firstFill(panels[1]!));
  });

  test("a bad experiment.json is named", async () => {
    const exp = craftExperiment({ A: [0.9] }, {});
    writeFileSync(join(exp, "experiment.json"), JSON.stringify({ suite: "t", claims: [{ text: "x" }] }));
    expect(await userError(buildReport([exp]))).toContain(`${join(exp, "experiment.json")}: claim 1 needs`);
    writeFileSync(join(exp, "experiment.json"), JSON.stringify({ suite: "t", target: 7 }));
    expect(await userError(buildReport([exp]))).toContain("target");
  });
});

describe("sizes are checked before anything is allocated", () => {
  test("a checkpoint whose config claims 1e5 stages × 1e5 microbatches: no schedule drawn, a note instead", async () => {
    const dir = folder();
    cpSync(runs.pipeoptim!, dir, { recursive: true });
    const summary = JSON.parse(readFileSync(join(dir, "summary.json"), "utf8"));
    delete summary.stages;
    writeFileSync(join(dir, "summary.json"), JSON.stringify(summary));
    await writeSafetensors(join(dir, "checkpoint.safetensors"), { w: { dtype: "F32", shape: [1], data: new Float32Array(1) } }, { config: JSON.stringify({ pipeline: { stages: 1e5, microbatches: 1e5 } }) });
    const doc = await buildReport([dir]);
    expect(doc).toContain("100000 stages × 100000 microbatches, too large to simulate and draw here");
    expect(doc).not.toContain("async-1f1b schedule");
  });

  test("an experiment listing one run folder many times stops at the report's byte budget", async () => {
    const exp = folder();
    cpSync(runs.sync!, join(exp, "a"), { recursive: true });
    writeFileSync(join(exp, "results.json"), JSON.stringify(Array.from({ length: 50 }, (_, i) => ({ suite: "s", label: "x", seed: i, runDir: "a" }))));
    const perRun = statSync(join(exp, "a", "metrics.jsonl")).size + statSync(join(exp, "a", "summary.json")).size;
    expect((await loadFolders([exp], 100 * perRun)).runs.length).toBe(50);
    expect(await userError(loadFolders([exp], 10 * perRun))).toContain(`the report's inputs pass ${10 * perRun} bytes in all`);
  });

  test("a metrics.jsonl past 64 MiB is refused by its size", async () => {
    const dir = folder();
    cpSync(runs.sync!, dir, { recursive: true });
    truncateSync(join(dir, "metrics.jsonl"), 65 << 20);
    expect(await userError(buildReport([dir]))).toContain(`${join(dir, "metrics.jsonl")}: ${65 << 20} bytes, more than a run writes`);
  });
});

describe("bad input", () => {
  test("a folder that is neither a run nor an experiment", async () => {
    const dir = folder();
    expect(await userError(buildReport([dir]))).toBe(`${dir}: neither a run folder (summary.json) nor an experiment folder (results.json)`);
    expect(await userError(buildReport([join(dir, "nope")]))).toContain("neither a run folder");
  });

  test("no folders at all", async () => {
    await userError(buildReport([]));
  });

  test("a broken summary.json, metrics.jsonl or results.json is named", async () => {
    const dir = folder();
    cpSync(runs.sync!, dir, { recursive: true });
    writeFileSync(join(dir, "summary.json"), "{ not json");
    expect(await userError(buildReport([dir]))).toBe(`${join(dir, "summary.json")}: not valid JSON`);

    cpSync(join(runs.sync!, "summary.json"), join(dir, "summary.json"));
    writeFileSync(join(dir, "metrics.jsonl"), '{"epoch":1,"testAccuracy":0.5}\n{"epoch":\n');
    expect(await userError(buildReport([dir]))).toBe(`${join(dir, "metrics.jsonl")}:2: not valid JSON`);

    Bun.spawnSync(["rm", join(dir, "metrics.jsonl")]);
    expect(await userError(buildReport([dir]))).toContain(`${join(dir, "metrics.jsonl")}: cannot read`);

    const exp = folder();
    writeFileSync(join(exp, "results.json"), '{"not": "an array"}');
    expect(await userError(buildReport([exp]))).toContain(join(exp, "results.json"));
  });
});

describe("skein report", () => {
  test("splits folders from flags", () => {
    expect(splitArgs(["a", "--out", "r.html", "b"])).toEqual({ dirs: ["a", "b"], flagArgs: ["--out", "r.html"] });
    expect(splitArgs(["--out=r.html", "a"])).toEqual({ dirs: ["a"], flagArgs: ["--out=r.html"] });
  });

  test("writes the report where --out says and nothing else", async () => {
    const dir = folder();
    const out = join(dir, "r.html");
    const write = spyOn(process.stdout, "write").mockImplementation(() => true);
    try {
      expect(await reportCommand([runs.sync!, "--out", out, runs.pipeoptim!])).toBe(0);
      expect(write).toHaveBeenCalledWith(`${out}\n`);
    } finally {
      write.mockRestore();
    }
    expect(readFileSync(out, "utf8")).toContain("pipeoptim: async-1f1b schedule");
    expect(Bun.spawnSync(["ls", dir]).stdout.toString().trim()).toBe("r.html");
  });

  test("needs a folder; an unwritable --out is a UserError and leaves nothing", async () => {
    await userError(reportCommand(["--out", "x.html"]));
    await userError(reportCommand([runs.sync!, "--bogus"]));
    const dir = folder();
    const out = join(dir, "no-such-dir", "r.html");
    expect(await userError(reportCommand([runs.sync!, "--out", out]))).toContain("--out");
    expect(existsSync(join(dir, "no-such-dir"))).toBe(false);
  });
});

describe("svg builders", () => {
  test("escape every text they are given", () => {
    const evil = `<script>alert("x")</script> & 'q'`;
    for (const svg of [
      lineChart([{ name: evil, points: [[0, 1], [1, 2]] }], { title: evil, xLabel: evil, yLabel: evil }),
      barChart([{ label: evil, value: 3 }], { title: evil }),
      ganttChart([{ stage: 0, kind: evil, microbatch: 0, start: 0, end: 1 }], { title: evil }),
    ]) {
      expect(svg).not.toContain("<script");
      expect(svg).toContain("&lt;script&gt;");
    }
  });

  test("log-scale y leaves out non-positive points and labels decades", () => {
    const svg = lineChart([{ name: "c", points: [[1, 1e-3], [2, 0], [3, 1e-1]] }], { title: "t", logY: true });
    const series = /class="series" d="([^"]*)"/.exec(svg)![1]!;
    expect(series.match(/[ML]/g)!.length).toBe(2);
    expect(svg).toContain(">1e-3<");
    expect(svg).toContain(">1e-1<");
  });

  test("an empty chart still has a title and axis paths", () => {
    const svg = lineChart([], { title: "nothing" });
    expect(titleOf(svg)).toBe("nothing");
    expect(pathDs(svg).length).toBeGreaterThan(0);
    expect(svg).toContain("no data");
  });

  test("the Gantt chart has a rect per action of a simulated schedule", () => {
    const sim = simulate(SCHEDULES["1f1b"]!(3, 4), { f: 1, b: 2 });
    const svg = ganttChart(sim.timeline, { title: "1f1b" });
    expect((svg.match(/<rect [^>]*><title>stage/g) ?? []).length).toBe(3 * 4 * 2);
  });

  test("legend names are never cut: long ones wrap onto lines that fit the chart", () => {
    const long = "decentlam b=256 one-peer-exponential (forced) with a label far longer than any chart is wide, on purpose";
    const names = [long, "short", "x".repeat(150)];
    const svg = lineChart(names.map((name, i) => ({ name, points: [[0, i], [1, i + 1]] as [number, number][] })), { title: "t", width: 400 });
    const entries = [...svg.matchAll(/<g class="legend-entry" data-name="([^"]*)">[\s\S]*?<\/g>/g)];
    expect(entries.map((e) => e[1])).toEqual(names.map(escapeXml));
    for (const [entry, name] of entries.map((e) => [e[0], e[1]!])) {
      const lines = [...entry.matchAll(/<tspan[^>]*>([^<]*)<\/tspan>/g)].map((m) => m[1]!);
      expect(lines.join(" ").replace(/ /g, "")).toBe(name.replace(/ /g, ""));
      for (const l of lines) expect(textWidth(l)).toBeLessThanOrEqual(400 - 64 - 16);
    }
    expect(svg).not.toContain("…");
  });

  test("nice ticks are round and cover the range", () => {
    expect(niceTicks(0, 1)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(1, 3)).toEqual([1, 1.5, 2, 2.5, 3]);
  });
});
