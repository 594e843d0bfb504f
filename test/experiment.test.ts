/**
 * `skein experiment`: the `all` suite in its quick form end to end (run folders, results.json,
 * results.csv, experiment.json, aggregate.csv, claims.csv and the tables the CLI prints), a diverging run recorded as a row rather than a crash, and bad names and flags
 * refused as UserErrors before anything is written.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { UserError } from "../engine/errors.ts";
import { experimentCommand, formatClaims, formatMethods, parseSeeds } from "../engine/cli/experiment-command.ts";
import { METRICS } from "../engine/report/aggregate.ts";
import { COLUMNS, runExperiment, toCsv, type ResultRow } from "../engine/experiments/run.ts";
import { SUITE_NAMES, SUITES } from "../engine/experiments/suites.ts";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import { tempFolders } from "./tempdir.ts";

const tempDir = tempFolders("skein-experiment-");

describe("skein experiment", () => {
  test("all --quick: one row per run, each with its run folder; CSV has a header and one line per row", async () => {
    const out = join(tempDir(), "all");
    const lines: string[] = [];
    const { out: written, rows, summary } = await runExperiment("all", { quick: true, out, onRun: (line) => lines.push(line) });
    expect(written).toBe(out);
    const quick = SUITES.all.quick;
    expect(rows.length).toBe(quick.runs.length * quick.seeds.length);
    expect(rows.map((r) => r.algo).sort()).toEqual(["decentlam", "hogwild", "layerwise", "pipeoptim", "sync"]);
    expect(new Set(rows.map((r) => r.model)).size).toBe(1);
    expect(lines.length).toBe(rows.length);
    expect(lines[0]).toMatch(/^\[1\/5\] all .+: \d+\.\d% in \d+\.\d s$/);

    const saved = JSON.parse(readFileSync(join(out, "results.json"), "utf8")) as ResultRow[];
    expect(saved).toEqual(rows);
    for (const row of saved) {
      expect(row.suite).toBe("all");
      expect(row.diverged).toBeUndefined();
      expect(row.testAccuracy).toBeGreaterThan(0.5); // one epoch of digits, far above chance
      expect(row.samplesPerSec).toBeGreaterThan(0);
      expect(existsSync(join(out, row.runDir, "summary.json"))).toBe(true);
      expect(existsSync(join(out, row.runDir, "metrics.jsonl"))).toBe(true);
    }
    const byAlgo = Object.fromEntries(saved.map((r) => [r.algo, r]));
    expect(byAlgo.hogwild!.stalenessMean).toBeGreaterThanOrEqual(0);
    expect(byAlgo.layerwise!.beta).toBeGreaterThan(0);
    expect(byAlgo.pipeoptim!.inconsistency!.length).toBe(2);
    expect(byAlgo.decentlam!.consensusDistance).toBeGreaterThanOrEqual(0);

    const csv = readFileSync(join(out, "results.csv"), "utf8").trimEnd().split("\n");
    expect(csv[0]).toBe(COLUMNS.join(","));
    expect(csv.length).toBe(rows.length + 1);

    // What the suite claims, and what it adds up to: one row per method, one per claim with a verdict.
    const meta = JSON.parse(readFileSync(join(out, "experiment.json"), "utf8"));
    expect(meta).toMatchObject({ suite: "all", mode: "quick", target: quick.target });
    expect(meta.claims).toEqual(quick.claims);
    expect(summary.methods.map((m) => m.method)).toEqual(quick.runs.map((r) => r.label));
    for (const m of summary.methods) expect(m.runs).toBe(quick.seeds.length);
    expect(summary.claims.length).toBe(quick.claims.length);
    for (const c of summary.claims) expect(["holds", "does not hold", "inconclusive"]).toContain(c.verdict);
    const aggregateCsv = readFileSync(join(out, "aggregate.csv"), "utf8").trimEnd().split("\n");
    expect(aggregateCsv.length).toBe(quick.runs.length + 1);
    expect(aggregateCsv[0]).toStartWith("suite,method,group,runs,finished,diverged,seeds,target,reachedTarget,finalAccuracy_mean,finalAccuracy_sd");
    const claimsCsv = readFileSync(join(out, "claims.csv"), "utf8").trimEnd().split("\n");
    expect(claimsCsv.length).toBe(quick.claims.length + 1);
    const table = formatMethods(summary).split("\n");
    expect(table.length).toBe(quick.runs.length + 1);
    expect(table[0]).toMatch(/^method +n +final acc \(mean ± sd\)/);
    const claimLines = formatClaims(summary).split("\n");
    expect(claimLines.length).toBe(1 + 2 * quick.claims.length);
    expect(claimLines[1]).toMatch(/^  (HOLDS|DOES NOT HOLD|INCONCLUSIVE AT N = 1) +\S/);
  });

  test("every claim of every suite names two of its runs and a metric", () => {
    for (const name of SUITE_NAMES) {
      for (const mode of ["quick", "full"] as const) {
        const v = SUITES[name][mode];
        expect(v.claims.length).toBeGreaterThan(0);
        expect(v.target).toBeGreaterThan(0);
        expect(v.target).toBeLessThanOrEqual(1);
        const labels = new Set(v.runs.map((r) => r.label));
        for (const c of v.claims) {
          expect(labels.has(c.a)).toBe(true);
          expect(labels.has(c.b)).toBe(true);
          expect(Object.keys(METRICS)).toContain(c.metric);
        }
      }
    }
  });

  test("a run that diverges is a row with `diverged`, and its folder exists", async () => {
    const out = tempDir();
    const gossip = SUITES.gossip.quick.runs.find((r) => r.config.algo === "decentlam")!;
    const runs = [{ label: "decentlam lr 50", config: { ...gossip.config, optimizer: { ...defaultOptimizer("momentum"), lr: 50 } } }];
    const { rows, summary } = await runExperiment("gossip", { out, runs, seeds: [1] });
    expect(rows.length).toBe(1);
    // Counted, not dropped: the method has one run, and it diverged.
    expect(summary.methods).toMatchObject([{ method: "decentlam lr 50", runs: 1, finished: 0, diverged: 1 }]);
    expect(summary.claims).toEqual([]);
    expect(readFileSync(join(out, "aggregate.csv"), "utf8")).toContain("gossip,decentlam lr 50,,1,0,1,");
    expect(rows[0]!.diverged).toContain("diverged");
    expect(rows[0]!.testAccuracy).toBeNull();
    expect(existsSync(join(out, rows[0]!.runDir))).toBe(true);
    const csv = readFileSync(join(out, "results.csv"), "utf8").trimEnd().split("\n");
    expect(csv.length).toBe(2);
  });

  test("running again into a folder: a suite stopped half-way leaves this run's rows, not the last run's aggregates and claims beside them", async () => {
    const out = tempDir();
    for (const file of ["results.json", "results.csv", "aggregate.csv", "claims.csv"]) writeFileSync(join(out, file), "from the run before\n");
    const first = SUITES.scaling.quick.runs[0]!;
    const broken = { label: "a model that does not fit the data", config: { ...first.config, model: "mlp:5-10" } };
    await expect(runExperiment("scaling", { out, runs: [first, broken], seeds: [1] })).rejects.toBeInstanceOf(UserError);
    expect(JSON.parse(readFileSync(join(out, "results.json"), "utf8")).map((r: ResultRow) => r.label)).toEqual([first.label]);
    expect(readFileSync(join(out, "results.csv"), "utf8")).toContain(first.label);
    expect(existsSync(join(out, "aggregate.csv"))).toBe(false);
    expect(existsSync(join(out, "claims.csv"))).toBe(false);
  });

  test("CSV fields with commas, quotes or newlines are quoted", () => {
    const row = { suite: "s", label: 'a,"b"\nc', seed: 1, inconsistency: [1, 2], runDir: "r" } as unknown as ResultRow;
    expect(toCsv([row], ["label", "seed", "inconsistency", "diverged", "runDir"])).toBe('label,seed,inconsistency,diverged,runDir\n"a,""b""\nc",1,1 2,,r\n');
  });

  test("bad suite names, seeds and flags are UserErrors; nothing is written", async () => {
    const out = join(tempDir(), "never");
    await expect(runExperiment("nope", { out })).rejects.toBeInstanceOf(UserError);
    await expect(runExperiment("all", { out, seeds: [-1] })).rejects.toBeInstanceOf(UserError);
    await expect(experimentCommand(["nope", "--quick"])).rejects.toBeInstanceOf(UserError);
    await expect(experimentCommand(["--quick"])).rejects.toBeInstanceOf(UserError);
    await expect(experimentCommand(["all", "--fast"])).rejects.toBeInstanceOf(UserError);
    await expect(experimentCommand(["all", "extra"])).rejects.toBeInstanceOf(UserError);
    expect(() => parseSeeds("1,,2")).toThrow(UserError);
    expect(() => parseSeeds("1.5")).toThrow(UserError);
    expect(parseSeeds("1, 2")).toEqual([1, 2]);
    expect(existsSync(out)).toBe(false);
  });

  test("every suite has quick and full runs with fixed seeds", () => {
    for (const name of SUITE_NAMES) {
      for (const mode of ["quick", "full"] as const) {
        const v = SUITES[name][mode];
        expect(v.seeds.length).toBeGreaterThan(0);
        expect(v.runs.length).toBeGreaterThan(0);
        expect(new Set(v.runs.map((r) => r.label)).size).toBe(v.runs.length);
      }
    }
  });
});
