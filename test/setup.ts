// Runs once before the test files (bunfig preload).
import { plugin } from "bun";
import { ensureKernelsBuilt } from "../engine/kernels/build.ts";

/**
 * The one test timeout. Property tests and end-to-end runs need more than Bun's 5 s on a busy
 * machine. Bun (1.4) has no bunfig setting for it, and setDefaultTimeout() called here would reach
 * only the first test file (oven-sh/bun#43787: the runner resets the default after each file and a
 * preload runs once). So this plugin prepends the call to every test file as Bun loads it, on the
 * file's first line so that line numbers in failures stay right.
 */
export const TEST_TIMEOUT_MS = 120_000;

plugin({
  name: "skein-test-timeout",
  setup(build) {
    build.onLoad({ filter: /\.test\.ts$/ }, async ({ path }) => ({
      loader: "ts",
      contents: `import { setDefaultTimeout as __skeinTimeout } from "bun:test"; __skeinTimeout(${TEST_TIMEOUT_MS}); ${await Bun.file(path).text()}`,
    }));
  },
});

// A fresh clone may run `bun test` before anything built the wasm kernels.
await ensureKernelsBuilt();
