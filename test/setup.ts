// Runs before every test file: make sure the wasm kernels exist (a fresh clone may run `bun test` first).
import { ensureKernelsBuilt } from "../engine/kernels/build.ts";
await ensureKernelsBuilt();
