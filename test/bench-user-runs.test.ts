/**
 * The user-facing benches (user-scaling, targets) read a `skein train --json` process's summary and
 * its epoch lines on stderr. If either changes shape, those benches would print NaN or nothing rather
 * than fail: this holds the contract.
 */
import { expect, test } from "bun:test";
import { capacityRun, startTrain } from "../bench/user-runs.ts";
import { withIqr, withRange, median, quantile } from "../bench/stats.ts";

const config = { name: "sync64", args: ["--algo", "sync", "--batch", "64"] };

test("a skein train process yields its samples/s, samples, CPU and each epoch's samples/s", async () => {
  const run = await startTrain(config, 1, { data: "synthetic:640", epochs: 2 });
  expect(run.rate).toBeGreaterThan(0);
  expect(run.epochRates).toHaveLength(2);
  for (const r of run.epochRates) expect(r).toBeGreaterThan(0);
  // Both epochs' samples: the summary's rate × its training seconds.
  expect(run.samples).toBeGreaterThan(0);
  expect(run.cpuMs).toBeGreaterThan(0);
  expect(run.wallMs).toBeGreaterThan(0);
}, 60_000);

test("the capacity run sums two processes' samples/s epoch by epoch", async () => {
  const cap = await capacityRun(config, { data: "synthetic:640", epochs: 1 });
  expect(cap.epochRates).toHaveLength(1);
  expect(cap.rate).toBeGreaterThan(0);
  expect(cap.epochRates[0]).toBeGreaterThan(0);
}, 60_000);

test("a failing process rejects with its last stderr line", async () => {
  await expect(startTrain({ name: "bad", args: ["--algo", "no-such-algo"] }, 1, { data: "synthetic:640", epochs: 1 })).rejects.toThrow(/no-such-algo/);
}, 60_000);

test("order statistics", () => {
  expect(median([3, 1, 2])).toBe(2);
  expect(median([4, 1, 3, 2])).toBe(2.5);
  expect(quantile([5, 1, 4, 2, 3], 0.25)).toBe(2);
  expect(withIqr([1, 2, 3, 4, 5], 1)).toBe("3.0 [2.0–4.0]");
  expect(withRange([2, 9, 4], 0)).toBe("4 [2–9]");
});
