/**
 * `npx bun run build`: compile skein into one executable, dist/skein, with the wasm kernels, the
 * embedded digits and the worker inside it.
 */
import { ensureKernelsBuilt } from "../kernels/build.ts";
import { buildDigitsCache } from "../data/embedded.ts";
import { join } from "node:path";

const root = join(import.meta.dir, "../..");
await ensureKernelsBuilt();
await buildDigitsCache();
// `--outfile PATH` (tests build into a temp folder); default dist/skein.
const at = process.argv.indexOf("--outfile");
const outfile = at > 0 && process.argv[at + 1] ? process.argv[at + 1]! : join(root, "dist/skein");
const result = await Bun.build({
  entrypoints: [join(root, "engine/cli/binary.ts"), join(root, "workers/worker.ts")],
  compile: { outfile },
  minify: true,
  define: { WORKER_IN_BINARY: JSON.stringify("./workers/worker.ts") },
});
if (!result.success) {
  for (const log of result.logs) console.error(log);
  process.exit(1);
}
console.log(`wrote ${outfile}`);
