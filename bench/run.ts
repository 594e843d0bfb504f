/**
 * `npx bun run bench`: every suite, one after the other (separate processes, so one suite's JIT and
 * heap state does not colour the next).
 */
import { join } from "node:path";

const suites = ["kernels.bench.ts", "train.bench.ts", "async.bench.ts", "pipeline.bench.ts", "gossip.bench.ts"];
for (const suite of suites) {
  console.log(`\n=== bench/${suite} ===`);
  const proc = Bun.spawn([process.execPath, join(import.meta.dir, suite)], { stdout: "inherit", stderr: "inherit" });
  if ((await proc.exited) !== 0) process.exit(1);
}
