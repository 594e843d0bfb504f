/**
 * Entry of the single binary (`npx bun run build` → dist/skein): the kernels, the embedded digits and
 * the worker are bundled into the executable, so it trains from any directory with nothing beside it.
 */
import relaxedKernels from "../../build/kernels.relaxed.wasm" with { type: "file" };
import simdKernels from "../../build/kernels.simd.wasm" with { type: "file" };
import digits from "../../build/digits.bin" with { type: "file" };
import { setEmbeddedKernels } from "../kernels/load.ts";
import { setEmbeddedDigits } from "../data/embedded.ts";
import { setWorkerEntry } from "../runtime/pool.ts";
import { runCli } from "./main.ts";

setEmbeddedKernels(await Bun.file(relaxedKernels).bytes(), await Bun.file(simdKernels).bytes());
setEmbeddedDigits(await Bun.file(digits).bytes());
// Bun bundles each entry point separately and names them relative to the entry points' common root
// (the repository root), so the worker is at workers/worker.js inside the executable, not next to us.
setWorkerEntry(WORKER_IN_BINARY);
await runCli(process.argv.slice(2));
