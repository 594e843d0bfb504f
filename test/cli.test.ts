/**
 * The command line as a user meets it: help, the --json summary, and bad input — one line naming what
 * and where, exit code 2, no stack trace, nothing written.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const MAIN = join(import.meta.dir, "../engine/cli/main.ts");

function skein(...args: string[]) {
  const r = Bun.spawnSync([process.execPath, MAIN, ...args], { stdout: "pipe", stderr: "pipe", env: { ...process.env, SKEIN_DEBUG: "" } });
  return { code: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

const tmp = () => mkdtempSync(join(tmpdir(), "skein-cli-"));

describe("skein CLI", () => {
  test("help everywhere", () => {
    const top = skein("--help");
    expect(top.code).toBe(0);
    expect(top.stdout).toContain("train");
    const train = skein("train", "--help");
    expect(train.code).toBe(0);
    for (const flag of ["--algo", "--model", "--data", "--epochs", "--batch", "--lr", "--optimizer", "--momentum", "--weight-decay", "--workers", "--seed", "--out", "--resume", "--json", "--executor"]) {
      expect(train.stdout).toContain(flag);
    }
  });

  test("--json: the last stdout line is the summary; --out writes the run folder", () => {
    const out = join(tmp(), "run");
    const r = skein("train", "--data", "synthetic:256", "--epochs", "2", "--batch", "32", "--model", "mlp:784-32-10", "--json", "--out", out);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split("\n");
    const summary = JSON.parse(lines[lines.length - 1]!);
    for (const key of ["algo", "model", "data", "epochs", "workers", "seconds", "samplesPerSec", "trainLoss", "testAccuracy", "peakRssBytes", "arena"]) {
      expect(summary).toHaveProperty(key);
    }
    expect(summary.testAccuracy).toBeGreaterThanOrEqual(0);
    expect(summary.testAccuracy).toBeLessThanOrEqual(1);
    expect(Object.keys(summary.arena.byRegion)).toEqual(expect.arrayContaining(["data", "parameters", "optimizerState", "activations", "scratch"]));
    for (const file of ["metrics.jsonl", "summary.json", "checkpoint.safetensors"]) expect(existsSync(join(out, file))).toBe(true);
    // Resuming a finished run just evaluates it again.
    const again = skein("train", "--resume", out, "--json");
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout.trim().split("\n").pop()!).testAccuracy).toBe(summary.testAccuracy);
  });

  const dir = tmp();
  const notAFile = join(dir, "file.txt");
  writeFileSync(notAFile, "x");
  const cases: [string, string[], RegExp][] = [
    ["unknown command", ["fly"], /unknown command 'fly'/],
    ["unknown flag", ["train", "--speed", "9"], /unknown flag --speed/],
    ["not a number", ["train", "--epochs", "abc"], /--epochs: expected an integer, got 'abc'/],
    ["out of range", ["train", "--workers", "0"], /--workers 0: must be at least 1/],
    ["negative lr", ["train", "--lr", "-1"], /--lr -1: must be greater than 0/],
    ["missing value", ["train", "--model"], /--model needs a value/],
    ["bad choice", ["train", "--optimizer", "lion"], /--optimizer lion: expected one of/],
    ["bad model", ["train", "--model", "mlp:784-x"], /--model mlp:784-x/],
    ["model does not fit the data", ["train", "--model", "mlp:100-10"], /expects 100 inputs/],
    ["missing data folder", ["train", "--data", `idx:${join(dir, "nope")}`], /nope/],
    ["unknown data scheme", ["train", "--data", "imagenet:/x"], /imagenet/],
    ["resume from nowhere", ["train", "--resume", join(dir, "nothing")], /nothing/],
    ["resume from a non-checkpoint", ["train", "--resume", notAFile + ".safetensors"], /file\.txt/],
    ["resume with a changed flag", ["train", "--resume", join(dir, "nothing"), "--lr", "0.1"], /nothing|--lr/],
    ["a layerwise flag on hogwild", ["train", "--algo", "hogwild", "--queue", "3"], /--queue applies to --algo layerwise\|layup, not hogwild/],
    ["a per-microbatch pipeline flag on gpipe", ["train", "--algo", "gpipe", "--pipeline-unit", "batch"], /--pipeline-unit applies to --algo pipedream\|spectrain\|pipeoptim, not gpipe/],
    ["a pipeline flag on sync", ["train", "--algo", "sync", "--schedule", "s.json"], /--schedule applies to --algo gpipe\|1f1b\|pipedream\|2bw\|spectrain\|pipeoptim, not sync/],
    ["workers not a multiple of replicas", ["train", "--algo", "lap", "--workers", "3", "--replicas", "2"], /not a multiple of --replicas 2/],
    ["layerwise workers mismatch", ["train", "--algo", "layerwise", "--workers", "2"], /layerwise runs --replicas × \(--fwd-threads \+ --bwd-threads\) = 3 here/],
    ["zero slots", ["train", "--algo", "layerwise", "--queue", "0"], /--queue 0: must be at least 1/],
  ];
  for (const [what, args, message] of cases) {
    test(`bad input: ${what} → one line, exit 2, nothing written`, () => {
      const out = join(dir, `out-${what.replace(/\W+/g, "-")}`);
      const r = skein(...args, "--out", out);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).not.toContain("    at ");
      expect(r.stdout).toBe("");
      expect(existsSync(out)).toBe(false);
    });
  }
});
