/**
 * Fault injection: what a hostile or careless user does to a run, and what must hold afterwards.
 *  - the run folder is a transactional store: atomic writes, no temp file outlives its writer, a
 *    reused folder is refused, metrics and trace are cut back to the checkpoint on resume, a failed or
 *    diverged run says so in summary.json;
 *  - kill -9 at random instants of a `skein train --out` subprocess always leaves a folder that
 *    `skein report` reads and `--resume` continues to bitwise the uninterrupted result, every epoch
 *    logged exactly once;
 *  - a checkpoint's config is input: wrong types, ranges and unknown names are refused (exit 2);
 *  - gzip and header bombs are refused within a memory budget (the child's peak RSS);
 *  - a stuck worker ends the run through the watchdog; too many threads are refused;
 *  - SIGTERM/SIGINT, also through the documented `npx bun run skein`, stop the trainer.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { gzipSync } from "node:zlib";
import { validateTrainConfig, MAX_THREADS } from "../engine/config-check.ts";
import { readSafetensors, writeSafetensors, tensorAsFloat32 } from "../engine/checkpoint/safetensors.ts";
import { DivergedError, UserError, WatchdogError } from "../engine/errors.ts";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import { RunFolder, removeStaleTempFiles, writeFileAtomic } from "../engine/run-folder.ts";
import { openResume, train, TrainingSession, type TrainConfig } from "../engine/train.ts";
import { tempFolders } from "./tempdir.ts";
import { isLauncher } from "../engine/cli/signals.ts";
import { spawnSyncWithPeakRss } from "./peak-rss.ts";
import { summaryOf, waitFor } from "./helpers.ts";


const ROOT = resolve(import.meta.dir, "..");
const MAIN = join(ROOT, "engine/cli/main.ts");
const folder = tempFolders("skein-reliability-");

const base: TrainConfig = {
  algo: "sync",
  model: "mlp:784-8-10",
  data: "synthetic:96",
  epochs: 2,
  batch: 32,
  workers: 1,
  executor: "deterministic",
  seed: 4,
  optimizer: defaultOptimizer("momentum"),
};

/** `skein …` as a user runs it; maxRssBytes is the child's own peak (see peak-rss.ts). */
function skein(args: string[], options: { cwd?: string } = {}) {
  return spawnSyncWithPeakRss([process.execPath, MAIN, ...args], { cwd: options.cwd, env: { ...process.env, SKEIN_DEBUG: "" } });
}

const epochsIn = (dir: string): number[] =>
  readFileSync(join(dir, "metrics.jsonl"), "utf8").split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l).epoch);
const tempFilesIn = (dir: string) => readdirSync(dir).filter((n) => n.includes(".tmp-"));

describe("the run folder is a transactional store", () => {
  test("atomic writes leave no temp file; temp files of dead processes go when the folder is opened, live ones stay", async () => {
    const dir = folder();
    await writeFileAtomic(join(dir, "a.json"), "{}");
    expect(readdirSync(dir)).toEqual(["a.json"]);
    // pid 2^22 + 1 is above Linux's pid_max: no such process.
    writeFileSync(join(dir, "checkpoint.safetensors.tmp-4194305"), "junk");
    writeFileSync(join(dir, "summary.json.tmp-4194305-3"), "junk");
    writeFileSync(join(dir, `summary.json.tmp-${process.pid}-0`), "in flight");
    expect((await removeStaleTempFiles(dir)).sort()).toEqual(["checkpoint.safetensors.tmp-4194305", "summary.json.tmp-4194305-3"]);
    expect(tempFilesIn(dir)).toEqual([`summary.json.tmp-${process.pid}-0`]);
  });

  test("a folder holding a run is refused unless overwriting or resuming it; overwriting removes the old run", async () => {
    const dir = folder();
    await train(base, { out: dir });
    await expect(train(base, { out: dir })).rejects.toThrow(/already holds a run .*--overwrite/);
    expect(epochsIn(dir)).toEqual([1, 2]); // untouched by the refused run
    await train({ ...base, epochs: 1 }, { out: dir, overwrite: true });
    expect(epochsIn(dir)).toEqual([1]);
    expect(summaryOf(dir)).toMatchObject({ status: "completed", epochs: 1, epochsDone: 1 });
    await train({ ...base, epochs: 3 }, { out: dir, resume: await openResume(dir) });
    expect(epochsIn(dir)).toEqual([1, 2, 3]);
    expect(tempFilesIn(dir)).toEqual([]);
  });

  test("one writer per folder: a second run on a folder being written is refused; a dead writer's lock is taken over", async () => {
    const dir = folder();
    const first = await RunFolder.open({ out: dir });
    await expect(RunFolder.open({ out: dir, overwrite: true })).rejects.toThrow(new RegExp(`process ${process.pid} is writing this run folder`));
    first.close();
    writeFileSync(join(dir, ".skein-lock"), "4194305"); // a pid no process can have: killed -9 long ago
    (await RunFolder.open({ out: dir, overwrite: true })).close();
    expect(existsSync(join(dir, ".skein-lock"))).toBe(false);
  });

  test("resume cuts metrics and trace back to the checkpoint's epoch: a line past it (kill before the checkpoint) or a repeated one is dropped", async () => {
    const dir = folder();
    await train({ ...base, epochs: 2 }, { out: dir });
    const ckpt = await openResume(dir);
    // What a kill between the metrics line and the checkpoint leaves: epoch 3 logged, checkpoint at 2.
    const lines = readFileSync(join(dir, "metrics.jsonl"), "utf8");
    writeFileSync(join(dir, "metrics.jsonl"), lines + lines.split("\n")[1] + "\n" + JSON.stringify({ epoch: 3, trainLoss: 9 }) + "\n" + '{"epoch":4,"tr');
    const run = await RunFolder.open({ out: dir, resume: { from: dir, epochsDone: ckpt.state.epochsDone } });
    run.close();
    expect(epochsIn(dir)).toEqual([1, 2]);
    const trace = JSON.parse(readFileSync(join(dir, "trace.json"), "utf8"));
    const marks = trace.traceEvents.filter((e: { name: string }) => e.name === "skein epoch end").map((e: { args: { epoch: number } }) => e.args.epoch);
    expect(marks).toEqual([1, 2]);
  });

  test("the trace streams: valid JSON with one epoch marker per epoch, spans of every epoch, across a resume", async () => {
    const dir = folder();
    await train({ ...base, workers: 2, epochs: 2 }, { out: dir });
    await train({ ...base, workers: 2, epochs: 4 }, { out: dir, resume: await openResume(dir) });
    const { traceEvents } = JSON.parse(readFileSync(join(dir, "trace.json"), "utf8"));
    const marks = traceEvents.filter((e: { name: string }) => e.name === "skein epoch end").map((e: { args: { epoch: number } }) => e.args.epoch);
    expect(marks).toEqual([1, 2, 3, 4]);
    // Spans between consecutive markers: every epoch traced.
    let spans = 0;
    for (const e of traceEvents) {
      if (e.ph === "X") spans++;
      else if (e.name === "skein epoch end") {
        expect(spans).toBeGreaterThan(0);
        spans = 0;
      }
    }
  });

  test("--resume A --out B: B tells the whole run (A's epochs, then B's) and A is left as it was", async () => {
    const a = folder();
    const b = join(folder(), "b");
    await train({ ...base, epochs: 2 }, { out: a });
    const before = readFileSync(join(a, "metrics.jsonl"), "utf8");
    await train({ ...base, epochs: 3 }, { out: b, resume: await openResume(a) });
    expect(epochsIn(b)).toEqual([1, 2, 3]);
    expect(readFileSync(join(a, "metrics.jsonl"), "utf8")).toBe(before);
    expect((await openResume(b)).state.epochsDone).toBe(3);
  });

  test("a failed run and a diverged run write a summary with status, epoch and reason", async () => {
    const failed = folder();
    await expect(train({ ...base, data: "synthetic:400", workers: 2 }, { out: failed, fault: { worker: 1, at: "kernel", afterCalls: 60 } })).rejects.toThrow(/injected fault/);
    expect(summaryOf(failed)).toMatchObject({ status: "failed", epochsDone: 0, failedEpoch: 1, reason: expect.stringMatching(/worker 1 .*injected fault/) });

    const diverged = folder();
    const config = { ...base, optimizer: { ...defaultOptimizer("sgd"), weightDecay: 1e300 } };
    const run = train(config, { out: diverged });
    await expect(run).rejects.toThrow(DivergedError);
    await expect(run).rejects.toThrow(/lower --weight-decay/);
    expect(summaryOf(diverged)).toMatchObject({ status: "diverged", failedEpoch: 1, reason: expect.stringMatching(/weight-decay/) });
    // The report reads both (a folder that looks empty was the old failure).
    for (const dir of [failed, diverged]) expect(skein(["report", dir, "--out", join(dir, "r.html")]).code).toBe(0);
  });
});

describe("kill -9 at random instants never loses or repeats an epoch", () => {
  test("a dozen kills of `skein train --out` then --resume: report reads every state, the end is bitwise the uninterrupted run", async () => {
    const args = ["--algo", "dmsgd", "--nodes", "4", "--workers", "2", "--model", "mlp:784-6-10", "--data", "synthetic:64", "--batch", "8", "--executor", "deterministic", "--seed", "9"];
    const EPOCHS = 200;
    const straight = folder();
    expect(skein(["train", ...args, "--epochs", String(EPOCHS), "--out", straight]).code).toBe(0);
    const reference = await readSafetensors(join(straight, "checkpoint.safetensors"));

    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 0, max: 300 }), { minLength: 12, maxLength: 12 }), async (delays) => {
        const dir = join(folder(), "run");
        const states: string[] = [];
        for (const delayMs of delays) {
          const resuming = existsSync(join(dir, "checkpoint.safetensors"));
          const cmd = resuming ? ["train", "--resume", dir] : ["train", ...args, "--epochs", String(EPOCHS), "--out", dir, ...(existsSync(dir) ? ["--overwrite"] : [])];
          const spawned = Date.now();
          const child = Bun.spawn([process.execPath, MAIN, ...cmd], { stdout: "ignore", stderr: "pipe" });
          // Kill once this process's run is under way (it has written its "running" summary), after a random further delay.
          const started = () => existsSync(join(dir, "summary.json")) && statSync(join(dir, "summary.json")).mtimeMs >= spawned;
          for (let i = 0; i < 2000 && !started(); i++) await Bun.sleep(5);
          await Bun.sleep(delayMs);
          child.kill(9);
          await child.exited;
          const summary = summaryOf(dir);
          states.push(`${summary.status}@${summary.epochsDone}`);
          expect(skein(["report", dir, "--out", join(dir, "..", "report.html")]).code).toBe(0);
          // Every logged epoch once, in order; at most one past the checkpoint (cut by the next resume).
          const epochs = epochsIn(dir);
          expect(epochs).toEqual(epochs.map((_, i) => i + 1));
          if (existsSync(join(dir, "checkpoint.safetensors"))) {
            const done = (await openResume(dir)).state.epochsDone;
            expect(epochs.length - done).toBeGreaterThanOrEqual(0);
            expect(epochs.length - done).toBeLessThanOrEqual(1);
          }
        }
        const last = skein(existsSync(join(dir, "checkpoint.safetensors")) ? ["train", "--resume", dir] : ["train", ...args, "--epochs", String(EPOCHS), "--out", dir, "--overwrite"]);
        expect({ code: last.code, stderr: last.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
        expect(epochsIn(dir)).toEqual(Array.from({ length: EPOCHS }, (_, i) => i + 1));
        expect(summaryOf(dir)).toMatchObject({ status: "completed", epochsDone: EPOCHS });
        expect(tempFilesIn(dir)).toEqual([]);
        const resumed = await readSafetensors(join(dir, "checkpoint.safetensors"));
        for (const [name, t] of reference.tensors) {
          expect({ name, same: Buffer.from(tensorAsFloat32(resumed.tensors.get(name)!).buffer).equals(Buffer.from(tensorAsFloat32(t).buffer)) }).toEqual({ name, same: true });
        }
      }),
      { numRuns: 1 },
    );
  });
});

describe("a checkpoint's config is input", () => {
  const good: TrainConfig = { ...base, async: { replicas: 1 }, gossip: { nodes: 4 }, pipeline: { stages: 2 } };
  /** One field of the config replaced by a wrong type, an out-of-range value or an unknown name. */
  const damage = fc.oneof(
    fc.record({
      path: fc.constantFrom("algo", "model", "data", "epochs", "batch", "workers", "executor", "seed", "optimizer.kind", "optimizer.lr", "optimizer.momentum", "optimizer.weightDecay", "async.replicas", "gossip.nodes", "pipeline.stages", "pipeline.microbatches"),
      value: fc.oneof(fc.string({ maxLength: 4 }).map((s) => `x${s}`), fc.constantFrom(-1, 0.5, 1e9, NaN, null, true, [], {}), fc.double({ min: -1e12, max: -1e-9 })),
    }),
    fc.record({ path: fc.constantFrom("", "optimizer.", "async.", "gossip.", "pipeline."), value: fc.constant("unknown") }).map(({ path }) => ({ path: `${path}bogus`, value: 1 })),
  );
  const apply = (config: TrainConfig, path: string, value: unknown) => {
    const copy = JSON.parse(JSON.stringify(config));
    const keys = path.split(".");
    let at = copy;
    for (const k of keys.slice(0, -1)) at = at[k] ??= {};
    at[keys[keys.length - 1]!] = value;
    return copy;
  };
  // Values a field may legitimately take, so a "damage" that happens to be valid is not counted.
  const stillValid = (path: string, value: unknown) =>
    ((path === "model" || path === "data") && typeof value === "string") ||
    (path === "optimizer.momentum" && value === 0.5) ||
    ((path === "optimizer.lr" || path === "optimizer.weightDecay") && (value === 0.5 || value === 1e9)) ||
    (path === "seed" && value === 1e9);

  test("validateTrainConfig: every wrong type, range and unknown name is one UserError naming the file and the field", () => {
    expect(validateTrainConfig(JSON.parse(JSON.stringify(good)), "f")).toMatchObject({ algo: "sync" });
    fc.assert(
      fc.property(damage, ({ path, value }) => {
        if (stillValid(path, value)) return;
        const bad = apply(good, path, value);
        expect(() => validateTrainConfig(bad, "runs/x/checkpoint.safetensors")).toThrow(UserError);
        expect(() => validateTrainConfig(bad, "runs/x/checkpoint.safetensors")).toThrow(new RegExp(`^runs/x/checkpoint.safetensors: config\\.${path.replaceAll(".", "\\.")}`));
      }),
      { numRuns: 300 },
    );
  });

  test("`skein train --resume` of an edited checkpoint: exit 2, one line naming the file; nothing trains", async () => {
    const dir = folder();
    await train({ ...base, epochs: 1 }, { out: dir });
    const file = join(dir, "checkpoint.safetensors");
    const { tensors, metadata } = await readSafetensors(file);
    const original = JSON.parse(metadata.config!);
    const samples = fc.sample(damage, { numRuns: 6, seed: 7 }).filter(({ path, value }) => !stillValid(path, value));
    const cases: [string, Record<string, string>][] = [
      ...samples.map(({ path, value }): [string, Record<string, string>] => [`${path}=${JSON.stringify(value)}`, { config: JSON.stringify(apply(original, path, value)) }]),
      ["batch 0 (used to spin forever)", { config: JSON.stringify({ ...original, batch: 0 }) }],
      ["algo bogus (used to train as hogwild)", { config: JSON.stringify({ ...original, algo: "bogus" }) }],
      ["lr -1 (used to ascend)", { config: JSON.stringify({ ...original, optimizer: { ...original.optimizer, lr: -1 } }) }],
      ["epochsDone 1e9", { epochsDone: "1e9" }],
      ["epochsDone past the config's epochs", { epochsDone: "7" }],
      ["too many counters", { counters: "[1,2,3]" }],
    ];
    for (const [what, change] of cases) {
      const edited = join(folder(), "checkpoint.safetensors");
      const copy: Record<string, { dtype: "F32"; shape: number[]; data: Float32Array }> = {};
      for (const [name, t] of tensors) copy[name] = { dtype: "F32", shape: t.shape, data: tensorAsFloat32(t) };
      await writeSafetensors(edited, copy, { ...metadata, ...change });
      const r = skein(["train", "--resume", edited, "--epochs", "2"]);
      expect({ what, code: r.code, lines: r.stderr.trim().split("\n").length, namesFile: r.stderr.includes(edited) }).toEqual({ what, code: 2, lines: 1, namesFile: true });
      expect(readdirSync(join(edited, ".."))).toEqual(["checkpoint.safetensors"]);
    }
  });

  test("a NaN weight in a checkpoint is refused naming the tensor", async () => {
    const dir = folder();
    await train({ ...base, epochs: 1 }, { out: dir });
    const file = join(dir, "checkpoint.safetensors");
    const { tensors, metadata } = await readSafetensors(file);
    const copy: Record<string, { dtype: "F32"; shape: number[]; data: Float32Array }> = {};
    for (const [name, t] of tensors) copy[name] = { dtype: "F32", shape: t.shape, data: tensorAsFloat32(t) };
    const first = Object.keys(copy)[0]!;
    copy[first]!.data[3] = NaN;
    await writeSafetensors(file, copy, metadata);
    await expect(TrainingSession.open({ ...base, epochs: 2 }, { resume: await openResume(dir) })).rejects.toThrow(new RegExp(`tensor ${first.replace(".", "\\.")} holds NaN at element 3`));
  });

  test("resume flags: --epochs at or below the epochs done and a --workers that does not fit are refused like a new run's", async () => {
    const dir = folder();
    await train({ ...base, algo: "layerwise", workers: 3, epochs: 2 }, { out: dir });
    for (const [flags, message] of [
      [["--epochs", "1"], /--epochs 1: .* has 2 epochs done already; want --epochs above 2/],
      [["--epochs", "2"], /--epochs 2: .* has 2 epochs done already/],
      [["--workers", "7"], /--workers 7: layerwise runs .* = 3 here/],
      [["--lr", "0.5"], /--lr cannot change when resuming/],
    ] as const) {
      const r = skein(["train", "--resume", dir, ...flags]);
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 2, stderr: expect.stringMatching(message) });
    }
    expect(epochsIn(dir)).toEqual([1, 2]);
  });

  test("a pipeline checkpoint with the wrong number of counters names the file", async () => {
    const dir = folder();
    const config: TrainConfig = { ...base, algo: "pipedream", workers: 2, pipeline: { stages: 2, microbatches: 2 }, epochs: 1 };
    await train(config, { out: dir });
    const file = join(dir, "checkpoint.safetensors");
    const { tensors, metadata } = await readSafetensors(file);
    const copy: Record<string, { dtype: "F32"; shape: number[]; data: Float32Array }> = {};
    for (const [name, t] of tensors) copy[name] = { dtype: "F32", shape: t.shape, data: tensorAsFloat32(t) };
    await writeSafetensors(file, copy, { ...metadata, counters: "[1,2,3,4,5]" });
    await expect(TrainingSession.open({ ...config, epochs: 2 }, { resume: await openResume(dir) })).rejects.toThrow(new RegExp(`${file}: the checkpoint holds 5 counters, pipedream .* keeps 2`));
  });
});

describe("limits: bombs and thread counts are refused before they cost memory", () => {
  /** An IDX folder whose train images are `images` (gzip), other files small and valid. */
  function idxFolder(images: Uint8Array): string {
    const dir = folder();
    const header = (magic: number, dims: number[]) => {
      const b = Buffer.alloc(4 + 4 * dims.length);
      b.writeUInt32BE(magic, 0);
      dims.forEach((d, i) => b.writeUInt32BE(d, 4 + 4 * i));
      return b;
    };
    writeFileSync(join(dir, "train-images-idx3-ubyte.gz"), images);
    writeFileSync(join(dir, "train-labels-idx1-ubyte"), Buffer.concat([header(0x801, [2]), Buffer.alloc(2)]));
    writeFileSync(join(dir, "t10k-images-idx3-ubyte"), Buffer.concat([header(0x803, [2, 28, 28]), Buffer.alloc(2 * 784)]));
    writeFileSync(join(dir, "t10k-labels-idx1-ubyte"), Buffer.concat([header(0x801, [2]), Buffer.alloc(2)]));
    return dir;
  }
  // gzip members concatenate into one stream: 24 copies of 64 MiB of zeros inflate to 1.5 GiB from ~1.6 MB.
  const zeros = gzipSync(new Uint8Array(64 << 20), { level: 1 });
  const BUDGET = 1 << 30;

  test("a gzip bomb (1.5 GiB of zeros, no IDX header) and a header claiming 5 million images: exit 2 naming the file, peak RSS under 1 GiB", () => {
    const bomb = Buffer.concat(Array.from({ length: 24 }, () => zeros));
    const header = Buffer.alloc(16);
    header.writeUInt32BE(0x803, 0);
    header.writeUInt32BE(5_000_000, 4);
    header.writeUInt32BE(28, 8);
    header.writeUInt32BE(28, 12);
    const lying = Buffer.concat([gzipSync(header), ...Array.from({ length: 24 }, () => zeros)]);
    for (const [what, file, message] of [
      ["gzip bomb", bomb, /wrong magic number 0x00000000/],
      ["header bomb", lying, /header says 5000000×28×28 = 3920000000 pixel bytes .* more than the 1\.0 GiB/],
    ] as const) {
      const dir = idxFolder(file);
      const r = skein(["train", "--data", `idx:${dir}`, "--epochs", "1"]);
      expect({ what, code: r.code, stderr: r.stderr }).toEqual({ what, code: 2, stderr: expect.stringMatching(message) });
      expect(r.stderr).toContain("train-images-idx3-ubyte.gz");
      expect(r.maxRssBytes).toBeLessThan(BUDGET);
    }
  });

  test("--data synthetic:10000000 (once the documented maximum) is refused, not run out of memory", () => {
    const r = skein(["train", "--data", "synthetic:10000000", "--epochs", "1"]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 2, stderr: expect.stringMatching(/synthetic:10000000: 10000000 samples of 784 bytes = 7\.3 GiB/) });
    expect(r.maxRssBytes).toBeLessThan(BUDGET);
  });

  test(`threads: layerwise 64 × (32 + 32) = 4096 threads is refused (at most ${MAX_THREADS}) before a worker starts`, async () => {
    const r = skein(["train", "--algo", "layerwise", "--replicas", "64", "--fwd-threads", "32", "--bwd-threads", "32", "--epochs", "1"]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 2, stderr: expect.stringMatching(/4096 threads asked for .* at most 64/) });
    await expect(TrainingSession.open({ ...base, algo: "layerwise", workers: 4096, async: { replicas: 64, fwdThreads: 32, bwdThreads: 32 } })).rejects.toThrow(UserError);
  });

  test("skein report of a folder whose checkpoint claims 10⁵ stages × 10⁵ microbatches: the schedule is not simulated, memory stays small", async () => {
    const dir = folder();
    await train({ ...base, algo: "gpipe", workers: 2, pipeline: { stages: 2, microbatches: 2 }, epochs: 1 }, { out: dir });
    const file = join(dir, "checkpoint.safetensors");
    const { tensors, metadata } = await readSafetensors(file);
    const copy: Record<string, { dtype: "F32"; shape: number[]; data: Float32Array }> = {};
    for (const [name, t] of tensors) copy[name] = { dtype: "F32", shape: t.shape, data: tensorAsFloat32(t) };
    const config = JSON.parse(metadata.config!);
    await writeSafetensors(file, copy, { ...metadata, config: JSON.stringify({ ...config, pipeline: { stages: 100_000, microbatches: 100_000 } }) });
    const summary = summaryOf(dir);
    delete summary.stages;
    writeFileSync(join(dir, "summary.json"), JSON.stringify(summary));
    const r = skein(["report", dir, "--out", join(dir, "report.html")]);
    expect(r.code).toBe(0);
    expect(readFileSync(join(dir, "report.html"), "utf8")).toContain("100000 stages × 100000 microbatches, too large to simulate and draw here");
    expect(r.maxRssBytes).toBeLessThan(BUDGET);
  });

  test("other bad input once reported as internal errors is exit 2", () => {
    for (const [args, env, message] of [
      [["schedule", "--cost-f", "1e308", "--cost-b", "1e308"], {}, /--cost-f 1e308: must be at most/],
      [["train", "--epochs", "1", "--data", "synthetic:64"], { SKEIN_KERNELS: "bogus" }, /SKEIN_KERNELS=bogus: expected "simd" or "relaxed"/],
    ] as const) {
      const r = Bun.spawnSync([process.execPath, MAIN, ...args], { stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env } });
      expect({ code: r.exitCode, stderr: r.stderr.toString() }).toEqual({ code: 2, stderr: expect.stringMatching(message) });
    }
  });
});

describe("no hangs", () => {
  test("a worker stuck inside a kernel ends the run through the watchdog, naming the worker and the call", async () => {
    // D-SGD deals the nodes to the workers statically, so worker 1 surely reaches its 40th kernel call
    // (sync's workers claim blocks dynamically: worker 0 might take them all).
    const config = { ...base, algo: "dsgd", data: "synthetic:400", workers: 2, executor: "threads" as const, epochs: 1, optimizer: defaultOptimizer("sgd"), gossip: { nodes: 2 } };
    const run = train(config, { fault: { worker: 1, at: "hang", afterCalls: 40 }, watchdogMs: 600 });
    await expect(run).rejects.toThrow(WatchdogError);
    // Worker 0 waits for worker 1 at the round's barrier: neither has returned, both are named.
    await expect(run).rejects.toThrow(/stuck: worker 0, worker 1 made no progress in dsgd for 0\.6 s \(waiting for their dsgd call to return\)/);
  });
});

describe("signals stop the trainer", () => {
  /** The pids of processes running skein's main with `marker` on their command line. */
  function trainersWith(marker: string): number[] {
    const out: number[] = [];
    for (const name of readdirSync("/proc")) {
      if (!/^\d+$/.test(name)) continue;
      try {
        const cmd = readFileSync(`/proc/${name}/cmdline`, "utf8");
        const state = readFileSync(`/proc/${name}/stat`, "utf8").split(") ")[1]?.[0];
        if (cmd.includes("engine/cli/main.ts") && cmd.includes(marker) && state !== "Z") out.push(Number(name));
      } catch {
        // gone meanwhile
      }
    }
    return out;
  }
  const linux = process.platform === "linux";

  // SIGTERM to the npx process alone: npm forwards it to its `sh -c`, which dies; `bun run` and the
  // trainer are re-parented and would train on. Ctrl-C in a terminal: SIGINT to the whole process
  // group (a SIGINT to npm alone is forwarded to `sh -c`, which holds it until its child exits, so
  // nothing below it can learn of it).
  for (const [signal, toGroup] of [["SIGTERM", false], ["SIGINT", true]] as const) {
    test.if(linux)(`${signal} to ${toGroup ? "the process group of " : ""}\`npx bun run skein train\` stops the trainer under it; the folder says stopped`, async () => {
      const dir = join(folder(), `npx-${signal}`);
      // setsid: a process group of its own, as a terminal gives a command line.
      const launcher = Bun.spawn(["setsid", "npx", "bun", "run", "skein", "train", "--epochs", "100000", "--data", "synthetic:64", "--model", "mlp:784-4-10", "--out", dir], {
        cwd: ROOT,
        stdout: "ignore",
        stderr: "ignore",
      });
      expect(await waitFor(() => existsSync(join(dir, "metrics.jsonl")) && epochsIn(dir).length > 0)).toBe(true);
      expect(trainersWith(dir)).toHaveLength(1);
      process.kill(toGroup ? -launcher.pid : launcher.pid, signal);
      // Gone, not merely slow: the poll allows far more than the trainer needs (it stops within 2 s).
      expect(await waitFor(() => trainersWith(dir).length === 0, 10_000)).toBe(true);
      expect(summaryOf(dir)).toMatchObject({ status: "stopped" });
      const epochs = epochsIn(dir);
      expect(epochs).toEqual(epochs.map((_, i) => i + 1));
    });
  }

  test("which ancestors count as launchers: npm/npx, bun run, sh -c; not a login shell, a test runner or a service manager", () => {
    for (const argv of [["npm", "exec", "bun", "run", "skein"], ["npx", "skein"], ["sh", "-c", "'bun' run skein train"], ["/usr/bin/bun", "run", "skein"], ["node", "/usr/lib/node_modules/npm/bin/npx-cli.js", "skein"]]) {
      expect({ argv, launcher: isLauncher(argv) }).toEqual({ argv, launcher: true });
    }
    for (const argv of [["bash"], ["-bash"], ["bash", "/dev/fd/3"], ["bun", "test"], ["bun", "engine/cli/main.ts"], ["systemd"], ["node", "server.js"], ["tmux"]]) {
      expect({ argv, launcher: isLauncher(argv) }).toEqual({ argv, launcher: false });
    }
  });

  test("SIGTERM to the trainer itself: exit 143, status stopped, resumable", async () => {
    const dir = join(folder(), "direct");
    const child = Bun.spawn([process.execPath, MAIN, "train", "--epochs", "100000", "--data", "synthetic:64", "--model", "mlp:784-4-10", "--out", dir], { stdout: "ignore", stderr: "pipe" });
    await waitFor(() => existsSync(join(dir, "checkpoint.safetensors")));
    child.kill("SIGTERM");
    expect(await child.exited).toBe(143);
    expect(await new Response(child.stderr).text()).toMatch(/^skein: stopped: SIGTERM\n$/);
    expect(summaryOf(dir)).toMatchObject({ status: "stopped" });
    const done = (await openResume(dir)).state.epochsDone;
    expect(epochsIn(dir).length - done).toBeLessThanOrEqual(1);
  });
});

