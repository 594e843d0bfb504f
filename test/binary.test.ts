/**
 * The single binary: built with bun build --compile, copied alone into an empty folder, it trains.
 * (Bun resolves a compiled binary's worker path against the entry points' common root: this is the
 * test that would catch it resolving against the working directory instead.)
 */
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

test("dist binary trains from another directory with nothing beside it", async () => {
  const dir = mkdtempSync(join(tmpdir(), "skein-bin-"));
  try {
    const binary = join(dir, "skein");
    const build = Bun.spawnSync([process.execPath, join(import.meta.dir, "../engine/cli/build-binary.ts"), "--outfile", binary], { stderr: "pipe", stdout: "pipe" });
    expect(build.exitCode).toBe(0);
    const run = Bun.spawnSync([binary, "train", "--epochs", "1", "--workers", "2", "--model", "mlp:784-64-10", "--json"], { cwd: dir, stdout: "pipe", stderr: "pipe" });
    expect(run.stderr.toString()).not.toContain("skein:"); // epoch lines only, no error
    expect(run.exitCode).toBe(0);
    const summary = JSON.parse(run.stdout.toString().trim().split("\n").pop()!);
    expect(summary.data).toBe("digits");
    expect(summary.testAccuracy).toBeGreaterThan(0.85);
    const bad = Bun.spawnSync([binary, "train", "--epochs", "x"], { cwd: dir, stderr: "pipe" });
    expect(bad.exitCode).toBe(2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 180_000);
