/**
 * While a pool of workers lives, the process's JIT compiler threads run under SCHED_IDLE
 * (runtime/compiler-threads.ts), and get their normal policy back when the last pool ends. Read back
 * from /proc, so these run on Linux only; elsewhere the module does nothing by design.
 */
import { describe, expect, test } from "bun:test";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import { TrainingSession, type TrainConfig } from "../engine/train.ts";
import { UserError } from "../engine/errors.ts";
import { withEnv } from "./helpers.ts";
import { schedulingPolicy, threadsOf, WORKER_THREAD } from "../engine/runtime/thread-stats.ts";
import { helperCpu } from "../engine/cli/calibrate-helpers.ts";
import {
  holdCompilerIdle,
  idleCompilerByDefault,
  idleCompilerFor,
  JIT_THREAD_NAME,
  releaseCompilerIdle,
  threadsNamed,
} from "../engine/runtime/compiler-threads.ts";

const SCHED_OTHER = 0;
const SCHED_IDLE = 5;
const linux = process.platform === "linux";
const twoCores = navigator.hardwareConcurrency >= 2;

/** The policies of this process's JIT threads (JavaScriptCore starts them with the VM). */
function jitPolicies(): (number | null)[] {
  const tids = threadsNamed(JIT_THREAD_NAME);
  expect(tids.length).toBeGreaterThan(0);
  return tids.map(schedulingPolicy);
}

/** The distinct policies of the JIT threads after an epoch of a session of `config`, read before it closes. */
async function policiesWhileTraining(config: TrainConfig): Promise<(number | null)[]> {
  const session = await TrainingSession.open(config);
  try {
    await session.trainEpoch();
    return [...new Set(jitPolicies())];
  } finally {
    session.close();
  }
}

const base: TrainConfig = {
  algo: "sync",
  model: "mlp:784-16-10",
  data: "synthetic:256",
  epochs: 1,
  batch: 64,
  workers: 2,
  executor: "threads",
  seed: 3,
  optimizer: defaultOptimizer("sgd"),
};

describe("compiler threads at idle priority while workers train", () => {
  test("SKEIN_IDLE_COMPILER: 0 turns it off, unset, empty or 1 leave it on, anything else is one clear error", () => {
    expect(idleCompilerByDefault("0")).toBe(false);
    for (const on of [undefined, "", "1"]) expect(idleCompilerByDefault(on)).toBe(true);
    expect(() => idleCompilerByDefault("yes")).toThrow(UserError);
    expect(() => idleCompilerByDefault("yes")).toThrow("SKEIN_IDLE_COMPILER=yes: expected 0 or 1");
  });

  test("only programs that wait for each other, two or more and no more than cores, idle the compiler", () => {
    expect(idleCompilerFor({ programsWait: true, programs: 2, cores: 2 }, undefined)).toBe(true);
    expect(idleCompilerFor({ programsWait: true, programs: 16, cores: 16 }, "1")).toBe(true);
    expect(idleCompilerFor({ programsWait: true, programs: 2, cores: 2 }, "0")).toBe(false);
    expect(idleCompilerFor({ programsWait: false, programs: 2, cores: 2 }, undefined)).toBe(false); // Hogwild!
    expect(idleCompilerFor({ programsWait: true, programs: 3, cores: 2 }, undefined)).toBe(false); // oversubscribed
    expect(idleCompilerFor({ programsWait: true, programs: 1, cores: 2 }, undefined)).toBe(false); // no peer
  });

  test.if(linux)("holders nest: the JIT threads are idle from the first hold to the last release", async () => {
    expect(jitPolicies().every((p) => p === SCHED_OTHER)).toBe(true);
    expect(await holdCompilerIdle()).toBe(true);
    expect(await holdCompilerIdle()).toBe(true);
    expect(jitPolicies().every((p) => p === SCHED_IDLE)).toBe(true);
    releaseCompilerIdle();
    expect(jitPolicies().every((p) => p === SCHED_IDLE)).toBe(true);
    releaseCompilerIdle();
    expect(jitPolicies().every((p) => p === SCHED_OTHER)).toBe(true);
    releaseCompilerIdle(); // one release too many changes nothing
    expect(jitPolicies().every((p) => p === SCHED_OTHER)).toBe(true);
  });

  test.if(linux && twoCores)("a 2-worker sync session idles them while open and gives them back on close; Hogwild! and SKEIN_IDLE_COMPILER=0 leave them alone", async () => {
    expect(await policiesWhileTraining(base)).toEqual([SCHED_IDLE]);
    expect(jitPolicies().every((p) => p === SCHED_OTHER)).toBe(true);
    expect(await policiesWhileTraining({ ...base, algo: "hogwild" })).toEqual([SCHED_OTHER]);
    expect(await withEnv("SKEIN_IDLE_COMPILER", "0", () => policiesWhileTraining(base))).toEqual([SCHED_OTHER]);
  });

  test.if(linux && twoCores)("/proc shows a 2-worker session's workers, and the helpers' CPU with the compiler's counted apart", async () => {
    const session = await TrainingSession.open(base);
    try {
      await session.trainEpoch();
      expect(threadsOf().filter((t) => t.name === WORKER_THREAD).length).toBeGreaterThanOrEqual(2);
      const helpers = helperCpu();
      expect(helpers).not.toBeNull();
      expect(helpers!.compilerSeconds).toBeGreaterThan(0); // this process has compiled JavaScript by now
      expect(helpers!.compilerSeconds).toBeLessThanOrEqual(helpers!.seconds);
    } finally {
      session.close();
    }
  });

  test("a bad SKEIN_IDLE_COMPILER is refused by every run, also one without workers", async () => {
    await withEnv("SKEIN_IDLE_COMPILER", "yes", () =>
      expect(TrainingSession.open({ ...base, workers: 1, executor: "deterministic" })).rejects.toThrow("SKEIN_IDLE_COMPILER=yes: expected 0 or 1"),
    );
  });
});
