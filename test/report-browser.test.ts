/**
 * The report in a real browser: headless Chromium loads it from a file:// URL, and the DOM it builds
 * must hold the charts with their paths, the page must log no errors, and a screenshot must render.
 * Skipped (with the install line) where Chromium is not installed.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import { train, type TrainConfig } from "../engine/train.ts";
import { buildReport } from "../engine/report/report.ts";
import { tempFolders } from "./tempdir.ts";
import { runExperiment } from "../engine/experiments/run.ts";
import { SUITES, type RunSpec } from "../engine/experiments/suites.ts";

const CHROMIUM = "/usr/bin/chromium";
const installed = existsSync(CHROMIUM);
const BROWSER_TIMEOUT_MS = 15_000;

const base: TrainConfig = {
  algo: "layerwise",
  model: "mlp:784-16-10",
  data: "synthetic:200",
  epochs: 2,
  batch: 32,
  workers: 1,
  executor: "threads",
  seed: 1,
  optimizer: defaultOptimizer("momentum"),
};

/** A fresh profile each run, and every background service off: the browser only loads our file. */
function chromium(profile: string, extra: string[], url: string): { stdout: string; stderr: string; exitCode: number | null } {
  const args = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    `--user-data-dir=${profile}`,
    "--enable-logging=stderr",
    "--v=0",
    ...extra,
    url,
  ];
  const r = Bun.spawnSync([CHROMIUM, ...args], { timeout: BROWSER_TIMEOUT_MS, stdout: "pipe", stderr: "pipe" });
  return { stdout: r.stdout.toString(), stderr: r.stderr.toString(), exitCode: r.exitCode };
}

/** Lines from the page itself (console messages, uncaught exceptions), not Chromium's own noise (dbus, gpu, ...). */
const pageErrors = (stderr: string) => stderr.split("\n").filter((l) => l.includes("CONSOLE") || l.includes("Uncaught"));

describe.skipIf(!installed)("report in headless Chromium", () => {
  const folder = tempFolders("skein-report-browser-");
  let reportPath = "";

  beforeAll(async () => {
    const runs = [];
    for (const config of [
      base,
      { ...base, algo: "decentlam", workers: 2, gossip: { nodes: 4 } },
      { ...base, algo: "pipeoptim", model: "mlp:784-32-16-10", pipeline: { stages: 2, microbatches: 2 } },
    ] as TrainConfig[]) {
      const out = join(folder(), config.algo);
      await train(config, { out });
      runs.push(out);
    }
    reportPath = join(folder(), "report.html");
    await Bun.write(reportPath, await buildReport(runs));
  }, 30_000);

  test("the rendered DOM holds every chart with non-empty paths, and the page logs no errors", () => {
    const r = chromium(mkdtempSync(join(tmpdir(), "skein-chromium-")), ["--dump-dom"], `file://${reportPath}`);
    expect(r.exitCode).toBe(0);
    const svgs = r.stdout.match(/<svg[\s\S]*?<\/svg>/g) ?? [];
    // accuracy vs epoch, vs time, loss, staleness, consensus, inconsistency, schedule.
    expect(svgs.length).toBe(7);
    for (const svg of svgs) {
      const ds = [...svg.matchAll(/<path[^>]*\sd="([^"]*)"/g)].map((m) => m[1]!);
      expect(ds.length).toBeGreaterThan(0);
      for (const d of ds) expect(d.trim()).not.toBe("");
    }
    expect(r.stdout).toContain("Consensus distance");
    expect(pageErrors(r.stderr)).toEqual([]);
  }, 20_000);

  test("a screenshot renders", () => {
    const png = join(folder(), "report.png");
    const r = chromium(mkdtempSync(join(tmpdir(), "skein-chromium-")), [`--screenshot=${png}`, "--window-size=1280,2000"], `file://${reportPath}`);
    expect(r.exitCode).toBe(0);
    expect(existsSync(png)).toBe(true);
    expect(statSync(png).size).toBeGreaterThan(1000);
    expect(pageErrors(r.stderr)).toEqual([]);
  }, 20_000);
});

/**
 * Measures the rendered charts in the page itself (a copy of the report with this script added): per
 * chart, each legend entry's text and box, and whether any two entries overlap or leave the chart.
 */
const MEASURE = `<script>
const out = [...document.querySelectorAll("svg.chart")].map((svg) => {
  const w = svg.viewBox.baseVal.width, h = svg.viewBox.baseVal.height;
  const entries = [...svg.querySelectorAll("g.legend-entry")].map((g) => {
    const b = g.getBBox();
    return { name: g.dataset.name, text: [...g.querySelectorAll("tspan")].map((t) => t.textContent).join(" "), x: b.x, y: b.y, right: b.x + b.width, bottom: b.y + b.height };
  });
  const overlaps = entries.some((a, i) => entries.some((b, j) => i < j && a.x < b.right - 0.5 && b.x < a.right - 0.5 && a.y < b.bottom - 0.5 && b.y < a.bottom - 0.5));
  const title = svg.querySelector("text.chart-title").getBBox();
  return { title: svg.querySelector("title").textContent, w, h, entries, overlaps, titleFits: title.x >= 0 && title.x + title.width <= w, bands: svg.querySelectorAll(".band").length, series: svg.querySelectorAll(".series").length };
});
const claims = document.getElementById("claims").getBoundingClientRect();
const pre = document.createElement("pre");
pre.id = "measure";
pre.textContent = JSON.stringify({ charts: out, claimsBottom: claims.bottom, viewport: innerHeight });
document.body.append(pre);
</script>`;

describe.skipIf(!installed)("a 30-run experiment in headless Chromium", () => {
  const folder = tempFolders("skein-report-browser-30-");
  let reportPath = "";
  let labels: string[] = [];

  beforeAll(async () => {
    // The async suite's six labels (so its claims apply), each a tiny run, five seeds: 30 runs.
    const tiny = { ...base, model: "mlp:784-16-10", data: "synthetic:200", epochs: 3, workers: 1 };
    const runs: RunSpec[] = SUITES.async.full.runs.map((r, i) => ({ label: r.label, config: { ...tiny, algo: i % 2 ? "layerwise" : "sync", optimizer: { ...tiny.optimizer, lr: 0.005 * (i + 1) } } }));
    labels = runs.map((r) => `async/${r.label}`);
    const out = join(folder(), "experiment");
    await runExperiment("async", { out, runs, seeds: [1, 2, 3, 4, 5] });
    const html = await buildReport([out]);
    reportPath = join(folder(), "report.html");
    await Bun.write(reportPath, html.replace("</body>", `${MEASURE}</body>`));
  }, 60_000);

  test("one legend entry per method with its whole label, none overlapping; a band per method; claims on the first screen", () => {
    const r = chromium(mkdtempSync(join(tmpdir(), "skein-chromium-")), ["--dump-dom", "--window-size=1280,800"], `file://${reportPath}`);
    expect(r.exitCode).toBe(0);
    expect(pageErrors(r.stderr)).toEqual([]);
    const text = /<pre id="measure">([^<]*)<\/pre>/.exec(r.stdout)![1]!.replaceAll("&quot;", '"').replaceAll("&lt;", "<").replaceAll("&gt;", ">").replaceAll("&amp;", "&");
    const m = JSON.parse(text) as {
      charts: { title: string; w: number; h: number; entries: { name: string; text: string; x: number; right: number; bottom: number }[]; overlaps: boolean; titleFits: boolean; bands: number; series: number }[];
      claimsBottom: number;
      viewport: number;
    };
    const training = m.charts.filter((c) => c.title.startsWith("Test accuracy") || c.title.startsWith("Train loss"));
    expect(training.length).toBe(3);
    for (const c of training) {
      expect(c.entries.map((e) => e.name)).toEqual(labels);
      for (const e of c.entries) {
        expect(e.text).toBe(e.name);
        expect(e.text).not.toContain("…");
        expect(e.x).toBeGreaterThanOrEqual(0);
        expect(e.right).toBeLessThanOrEqual(c.w);
        expect(e.bottom).toBeLessThanOrEqual(c.h);
      }
      expect(c.overlaps).toBe(false);
      expect(c.series).toBe(6);
      expect(c.bands).toBe(6);
    }
    for (const c of m.charts) expect(c.titleFits).toBe(true);
    // The claims table ends within the first 800 px.
    expect(m.claimsBottom).toBeLessThanOrEqual(m.viewport);
  }, 30_000);
});

if (!installed) test.skip(`report in headless Chromium: chromium not installed: apt-get install -y chromium (${CHROMIUM} missing)`, () => {});
