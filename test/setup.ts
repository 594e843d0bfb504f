// Runs before every test file (bunfig preload).
import { setDefaultTimeout } from "bun:test";
import { ensureKernelsBuilt } from "../engine/kernels/build.ts";

// Property tests and short end-to-end runs take seconds on a quiet machine and more on a busy one;
// Bun's default of 5 s per test would turn load into failures. (bunfig.toml has no timeout setting.)
setDefaultTimeout(120_000);

// A fresh clone may run `bun test` before anything built the wasm kernels.
await ensureKernelsBuilt();
