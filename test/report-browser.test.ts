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

if (!installed) test.skip(`report in headless Chromium: chromium not installed: apt-get install -y chromium (${CHROMIUM} missing)`, () => {});
