// Runs once before the test files (bunfig preload).
//
// Timeouts: Bun gives each test 5 s, bunfig.toml has no setting for it, and setDefaultTimeout here
// reaches only the first test file, so every test file calls setDefaultTimeout(120_000) itself.
import { ensureKernelsBuilt } from "../engine/kernels/build.ts";

// A fresh clone may run `bun test` before anything built the wasm kernels.
await ensureKernelsBuilt();
