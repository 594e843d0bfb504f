/**
 * A run's summary reports its own peak memory, whoever started it: on Linux a process's ru_maxrss
 * includes the peak of the process that started it (see peak-rss.ts), so a run launched by a large
 * process (a test runner, a bench, an experiment) reported that process's size as its own.
 */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";

const MAIN = join(import.meta.dir, "..", "engine", "cli", "main.ts");
const MIB = 1 << 20;

describe("the summary's peakRssBytes", () => {
  test.if(process.platform === "linux")("a run started by a process that holds 1.5 GiB reports its own peak, not its starter's", () => {
    // The starter touches 1.5 GiB, then runs a small training as a user would and prints its summary.
    const starter = `
      const held = Buffer.alloc(1536 * ${MIB}, 1);
      const r = Bun.spawnSync([process.execPath, ${JSON.stringify(MAIN)}, "train", "--model", "mlp:784-16-10", "--data", "synthetic:256", "--epochs", "1", "--json"], { stdout: "pipe", stderr: "inherit" });
      process.stdout.write(JSON.stringify({ held: held.length, summary: r.stdout.toString().trim().split("\\n").at(-1), childMaxRss: r.resourceUsage.maxRSS }));
    `;
    const r = Bun.spawnSync([process.execPath, "-e", starter], { stdout: "pipe", stderr: "inherit" });
    expect(r.exitCode).toBe(0);
    const { held, summary, childMaxRss } = JSON.parse(r.stdout.toString());
    expect(held).toBe(1536 * MIB);
    // The kernel's figure for the child carries the starter's peak: the situation this test is about.
    expect(childMaxRss).toBeGreaterThan(1536 * MIB);
    const peak = JSON.parse(summary).peakRssBytes;
    expect(peak).toBeGreaterThan(10 * MIB);
    expect(peak).toBeLessThan(1024 * MIB);
  });
});
