/**
 * Runs that span processes over NATS: bitwise the run of one process, and faults that end the run
 * cleanly. Every run here starts its own nats-server on 127.0.0.1 (random port, random token) and its
 * own child processes, and stops them; without nats-server these tests skip, saying so.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import { buildSchedule } from "../engine/algorithms/pipeline/schedule.ts";
import { openResume, train, type TrainConfig } from "../engine/train.ts";
import { trainAcrossProcesses } from "../engine/run-processes.ts";
import { natsServerPath, startLocalServer } from "../engine/distributed/server.ts";
import { checkFrame, encodeFrame, KIND, parseRunId } from "../engine/distributed/frame.ts";
import { subjectOf } from "../engine/distributed/transport.ts";
import { connect } from "@nats-io/transport-node";
import fc from "fast-check";
import { CHECKPOINT_FILE } from "../engine/checkpoint/checkpoint.ts";
import { tempFolders } from "./tempdir.ts";

const ROOT = join(import.meta.dir, "..");
const SELF = [process.execPath, join(ROOT, "engine/cli/main.ts")];
const haveNats = natsServerPath() !== null;
if (!haveNats) console.warn("nats.test.ts: no nats-server (Debian: apt-get install nats-server): the tests of runs across processes skip");
const natsTest = haveNats ? test : test.skip;
const folder = tempFolders("skein-nats-");

const gossip = (algo: string, topology: string, nodes = 8): TrainConfig => ({
  algo,
  model: "mlp:784-32-10",
  data: "digits",
  epochs: 2,
  batch: 16,
  workers: 2,
  executor: "threads",
  seed: 7,
  optimizer: { ...defaultOptimizer("momentum"), lr: 0.05 },
  gossip: { topology, nodes },
});

/** The same configuration in one process and across `procs` processes: final weights and every checkpointed vector. */
async function bothWays(config: TrainConfig, procs: number) {
  const one = folder();
  const many = folder();
  let inProcess: Float32Array | null = null;
  let across: Float32Array | null = null;
  const a = await train(config, { out: one, onFinish: (p) => (inProcess = p) });
  const b = await trainAcrossProcesses(config, { out: many, onFinish: (p) => (across = p) }, { procs, self: SELF });
  // One trace: a track per program, named for its process, clocks on the coordinator's.
  const trace = JSON.parse(readFileSync(join(many, "trace.json"), "utf8"));
  const events: { ph: string; name: string; args?: { name: string } }[] = Array.isArray(trace) ? trace : trace.traceEvents;
  const tracks = events.filter((e) => e.ph === "M").map((e) => e.args!.name);
  return {
    tracks,
    crossings: events.filter((e) => e.ph === "X" && e.name.startsWith("NATS")).length,
    summaries: [a, b],
    sameWeights: Buffer.from(inProcess!.buffer).equals(Buffer.from(across!.buffer)),
    sameCheckpoint: readFileSync(join(one, CHECKPOINT_FILE)).equals(readFileSync(join(many, CHECKPOINT_FILE))),
  };
}

describe("runs across processes are bitwise the run of one process", () => {
  for (const [algo, topology, procs, ...rest] of [
    ["dmsgd", "ring", 2],
    ["decentlam", "ring", 2],
    ["dmsgd", "one-peer-exponential", 4],
    ["dsgd", "one-peer-exponential", 2],
    ["decentlam", "one-peer-exponential", 4],
    ["pmsgd", "ring", 2],
    // Two workers per process: each streams its crossing messages as it writes them, in its own time.
    ["dmsgd", "ring", 2, 4],
    ["dsgd", "one-peer-exponential", 2, 4],
  ] as const) {
    const workers = (rest as readonly number[])[0] ?? procs;
    natsTest(`${algo} on the ${topology} topology, ${workers} workers on ${procs} processes`, async () => {
      // DecentLaM with momentum on a directed graph runs only when forced (it is unstable there in the long run).
      const config = { ...gossip(algo, topology), workers, gossip: { topology, nodes: 8, force: algo === "decentlam" } };
      const { summaries, sameWeights, sameCheckpoint, tracks, crossings } = await bothWays(config, procs);
      expect(summaries[1]!.status).toBe("completed");
      expect(summaries[1]!.testAccuracy).toBe(summaries[0]!.testAccuracy);
      const processes = summaries[1]!.processes!;
      expect(processes.count).toBe(procs);
      expect(processes.bytesSent).toBeGreaterThan(0);
      expect(processes.communicationSeconds).toHaveLength(procs);
      expect(tracks).toHaveLength(workers);
      expect(new Set(tracks.map((t) => t.split(":")[0])).size).toBe(procs);
      expect(crossings).toBeGreaterThan(0);
      expect(sameWeights).toBe(true);
      expect(sameCheckpoint).toBe(true);
    });
  }

  // Batch 128: two blocks of 64, one per process; batch 320 on 3 processes: five blocks shared 2/2/1,
  // and the last step of the epoch is shorter (fewer blocks than processes at times).
  for (const [batch, procs, workers, optimizer] of [
    [128, 2, 2, "momentum"],
    [320, 3, 4, "adam"],
  ] as const) {
    natsTest(`sync, batch ${batch}, ${workers} workers on ${procs} processes, ${optimizer}`, async () => {
      const config: TrainConfig = { ...gossip("sync", "ring"), gossip: undefined, batch, workers, optimizer: defaultOptimizer(optimizer) };
      const { summaries, sameWeights, sameCheckpoint } = await bothWays(config, procs);
      expect(summaries[1]!.status).toBe("completed");
      expect(sameWeights).toBe(true);
      expect(sameCheckpoint).toBe(true);
    });
  }

  // LAP and LPP: one replica group per process. With one worker per group the run is deterministic
  // (sequential SGD per replica, averaged in replica order), so it must be bitwise.
  for (const algo of ["lap", "lpp"] as const) {
    natsTest(`${algo}, one replica group of one worker per process, 3 processes`, async () => {
      const config: TrainConfig = { ...gossip(algo, "ring"), gossip: undefined, workers: 3, async: { replicas: 3, avgEvery: 3, lppWarmup: 1 } };
      const { summaries, sameWeights, sameCheckpoint } = await bothWays(config, 3);
      expect(summaries[1]!.status).toBe("completed");
      expect(sameWeights).toBe(true);
      expect(sameCheckpoint).toBe(true);
    });
  }

  natsTest("lap with Hogwild! groups of two workers on 2 processes learns (asynchronous: no bitwise claim)", async () => {
    const config: TrainConfig = { ...gossip("lap", "ring"), gossip: undefined, workers: 4, epochs: 1, async: { replicas: 2, avgEvery: 4 } };
    const summary = await trainAcrossProcesses(config, {}, { procs: 2, self: SELF });
    expect(summary.status).toBe("completed");
    // One asynchronous epoch (momentum 0.05, Hogwild! groups of two) lands at 0.80–0.86 in one process
    // and across processes alike, and lower under load (0.77 seen in a full suite); chance is 0.1.
    expect(summary.testAccuracy).toBeGreaterThan(0.6);
  });

  // Pipelines: one stage per process; the schedules run unchanged, hand-offs cross with their data.
  for (const [algo, stages, optimizer, schedule] of [
    ["1f1b", 2, "momentum"],
    ["pipedream", 2, "momentum"],
    ["pipeoptim", 3, "adam"],
    // Zero bubble: a later stage's deferred W gives its slot up last, and stage 0 hears of it by a relayed wake.
    ["1f1b", 2, "momentum", "zb-h1"],
    // Interleaved: each process holds two chunks, so hand-offs go 0 → 1 → 0 → 1 and back.
    ["1f1b", 2, "adam", "interleaved:2"],
  ] as const) {
    const name = schedule ? `, schedule ${schedule}` : "";
    natsTest(`${algo}, ${stages} stages on ${stages} processes, ${optimizer}${name}`, async () => {
      const pipeline = { stages, microbatches: 4, ...(schedule ? { schedule: buildSchedule(schedule, stages, 4) } : {}) };
      const model = schedule === "interleaved:2" ? "mlp:784-32-16-16-10" : "mlp:784-32-16-10"; // a chunk needs a layer with weights
      const config: TrainConfig = { ...gossip(algo, "ring"), gossip: undefined, model, batch: 32, workers: stages, optimizer: defaultOptimizer(optimizer), pipeline };
      const { summaries, sameWeights, sameCheckpoint } = await bothWays(config, stages);
      expect(summaries[1]!.status).toBe("completed");
      expect(sameWeights).toBe(true);
      expect(sameCheckpoint).toBe(true);
    });
  }
});

/** Wait for `ready()` to hold, checking every 50 ms, for at most `ms` (then fail saying `what`). */
async function until(ready: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ready()) {
    if (Date.now() > deadline) throw new Error(`gave up after ${ms / 1000} s waiting for ${what}`);
    await Bun.sleep(50);
  }
}

/** The pids of a process's children (Linux: /proc/PID/task/TID/children). */
function childrenOf(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((tid) =>
      readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number),
    );
  } catch {
    return [];
  }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return !readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.startsWith("Z");
  } catch {
    return false;
  }
};

const cli = (args: string[]) => Bun.spawn([...SELF, ...args], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });

describe("resuming across processes continues exactly, with another process count", () => {
  for (const [algo, extra, from, to] of [
    ["pipeoptim", { model: "mlp:784-32-16-10", workers: 3, batch: 32, pipeline: { stages: 3, microbatches: 4 } }, 3, 2],
    ["lap", { workers: 2, async: { replicas: 2, avgEvery: 3 } }, 2, 2],
  ] as const) {
    natsTest(`${algo}: 2 epochs on ${from} processes, then a third on ${to}, equals 3 epochs in one process (Adam)`, async () => {
      const config: TrainConfig = { ...gossip(algo, "ring"), gossip: undefined, ...extra, optimizer: defaultOptimizer("adam") } as TrainConfig;
      const straight = folder();
      const resumed = folder();
      await train({ ...config, epochs: 3 }, { out: straight });
      await trainAcrossProcesses(config, { out: resumed }, { procs: from, self: SELF });
      const resume = await openResume(resumed);
      await trainAcrossProcesses({ ...(resume.state.config as TrainConfig), epochs: 3 }, { out: resumed, resume }, { procs: to, self: SELF });
      expect(readFileSync(join(resumed, CHECKPOINT_FILE)).equals(readFileSync(join(straight, CHECKPOINT_FILE)))).toBe(true);
    });
  }
});

describe("faults end the run across processes", () => {
  natsTest("kill -9 of one process ends the run naming its rank; the folder stays consistent and --resume continues exactly (another --procs)", async () => {
    const out = folder();
    const args = ["train", "--algo", "dmsgd", "--model", "mlp:784-32-10", "--nodes", "8", "--batch", "16", "--seed", "5", "--lr", "0.05"];
    const run = cli([...args, "--procs", "3", "--epochs", "500", "--out", out]);
    try {
      // Once the first epoch's checkpoint is written, kill one follower.
      await until(() => existsSync(join(out, CHECKPOINT_FILE)), 60_000, "the first checkpoint");
      const followers = childrenOf(run.pid).filter((p) => readFileSync(`/proc/${p}/cmdline`, "utf8").includes("join"));
      expect(followers.length).toBe(2);
      const killed = followers[1]!;
      const t0 = performance.now();
      process.kill(killed, "SIGKILL");
      const code = await Promise.race([run.exited, Bun.sleep(20_000).then(() => "hung")]);
      const seconds = (performance.now() - t0) / 1000;
      expect(code).toBe(1);
      const stderr = await new Response(run.stderr).text();
      const last = stderr.trim().split("\n").pop()!;
      console.log(`kill -9 of pid ${killed}: run ended ${seconds.toFixed(2)} s later: ${last}`);
      expect(last).toMatch(new RegExp(`skein: rank \\d \\(pid ${killed} on ${hostname()}\\) exited on SIGKILL`));
      await until(() => followers.every((p) => !alive(p)), 10_000, "the other follower to exit");
      const summary = JSON.parse(readFileSync(join(out, "summary.json"), "utf8"));
      expect(summary.status).toBe("failed");
      expect(summary.reason).toContain(`pid ${killed}`);
      const done: number = summary.epochsDone;
      expect(done).toBeGreaterThanOrEqual(1);

      // Resume on 2 processes for one more epoch: the checkpoint equals an uninterrupted run's, in one process.
      const resumed = cli(["train", "--resume", out, "--epochs", String(done + 1), "--procs", "2"]);
      expect(await Promise.race([resumed.exited, Bun.sleep(60_000).then(() => "hung")])).toBe(0);
      const reference = folder();
      const straight = cli([...args, "--workers", "3", "--epochs", String(done + 1), "--out", reference]);
      expect(await Promise.race([straight.exited, Bun.sleep(60_000).then(() => "hung")])).toBe(0);
      expect(readFileSync(join(out, CHECKPOINT_FILE)).equals(readFileSync(join(reference, CHECKPOINT_FILE)))).toBe(true);
    } finally {
      run.kill("SIGKILL");
      for (const p of childrenOf(run.pid)) process.kill(p, "SIGKILL");
    }
  });

  natsTest("kill -9 of the coordinator: its followers and its nats-server exit on their own", async () => {
    const run = cli(["train", "--algo", "dsgd", "--model", "mlp:784-32-10", "--nodes", "4", "--batch", "16", "--procs", "3", "--epochs", "500", "--json"]);
    let followers: number[] = [];
    let servers: number[] = [];
    try {
      await until(() => (followers = childrenOf(run.pid).filter((p) => readFileSync(`/proc/${p}/cmdline`, "utf8").includes("join"))).length === 2, 30_000, "two followers");
      // The nats-server it started (under the shell that watches the coordinator).
      servers = childrenOf(run.pid).flatMap((p) => [p, ...childrenOf(p)]).filter((p) => readFileSync(`/proc/${p}/cmdline`, "utf8").includes("nats-server"));
      expect(servers.length).toBeGreaterThan(0);
      // Wait for training to be under way (the progress bar's first epoch line).
      await Bun.sleep(1_500);
      process.kill(run.pid, "SIGKILL");
      await until(() => followers.every((p) => !alive(p)), 10_000, "the followers to exit");
      await until(() => servers.every((p) => !alive(p)), 10_000, "its nats-server to stop");
    } finally {
      run.kill("SIGKILL");
      for (const p of [...followers, ...servers]) if (alive(p)) process.kill(p, "SIGKILL");
    }
  });
});

describe("every frame is checked", () => {
  const runId = 0x0123456789abcdefn;
  const expectations = { runId, receiver: 1, procs: 3, nextSequence: [4, 0, 9], maxMessageBytes: 1000, names: ["rank 0", "rank 1", "rank 2"] };
  const good = { kind: KIND.exchange, sender: 2, runId, receiver: 1, sequence: 9, tag: 3, messageBytes: 64, chunkOffset: 0, chunkBytes: 16 };

  test("a frame is accepted exactly when run id, receiver, sender, kind, sequence and sizes all fit", () => {
    // Each field either right or replaced by another value: only the all-right frame passes.
    const field = <T>(right: T, wrong: fc.Arbitrary<T>) => fc.oneof(fc.constant({ value: right, ok: true }), wrong.filter((w) => w !== right).map((value) => ({ value, ok: false })));
    fc.assert(
      fc.property(
        field(good.runId, fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })),
        field(good.receiver, fc.integer({ min: 0, max: 65535 })),
        field(good.sender, fc.constantFrom(1, 3, 70)),
        field(good.kind, fc.constantFrom(0, 10, 200)),
        field(good.sequence, fc.integer({ min: 0, max: 2 ** 32 - 1 })),
        field(good.messageBytes, fc.integer({ min: 1001, max: 2 ** 32 - 1 })),
        (run, receiver, sender, kind, sequence, messageBytes) => {
          const h = { ...good, runId: run.value, receiver: receiver.value, sender: sender.value, kind: kind.value, sequence: sequence.value, messageBytes: messageBytes.value };
          const frame = encodeFrame(h, new Uint8Array(16).fill(7));
          const verdict = checkFrame(frame, expectations);
          const allRight = [run, receiver, sender, kind, sequence, messageBytes].every((f) => f.ok);
          expect(typeof verdict === "string").toBe(!allRight);
        },
      ),
    );
  });

  test("truncated, foreign-magic, wrong-version, non-zero reserved and overrunning frames are refused, naming the field", () => {
    const frame = encodeFrame(good, new Uint8Array(16));
    const mutated = (at: number, value: number) => {
      const f = frame.slice();
      f[at] = value;
      return f;
    };
    expect(checkFrame(frame, expectations)).toMatchObject({ sender: 2, tag: 3 });
    expect(checkFrame(frame.subarray(0, 30), expectations)).toMatch(/shorter than the 40-byte header/);
    expect(checkFrame(mutated(0, 0), expectations)).toMatch(/bad magic/);
    expect(checkFrame(mutated(4, 2), expectations)).toMatch(/wire version 2/);
    expect(checkFrame(mutated(18, 1), expectations)).toMatch(/reserved/);
    expect(checkFrame(frame.subarray(0, 50), expectations)).toMatch(/says 16 body bytes, the frame holds 10/);
    expect(checkFrame(encodeFrame({ ...good, chunkOffset: 60 }, new Uint8Array(16)), expectations)).toMatch(/overruns the 64-byte message/);
  });

  natsTest("a foreign or malformed message published into a live run ends it with that reason; the folder keeps the last good checkpoint", async () => {
    for (const [what, forge, reason] of [
      ["another run's message", (id: bigint) => encodeFrame({ ...good, runId: id ^ 1n, receiver: 0, sender: 1, sequence: 0 }, new Uint8Array(4)), /belongs to run/],
      ["a replayed sequence number", (id: bigint) => encodeFrame({ ...good, runId: id, receiver: 0, sender: 1, sequence: 0 }, new Uint8Array(4)), /sequence 0 from rank 1 .*expected \d+/],
      ["garbage", () => new TextEncoder().encode("hello, skein"), /shorter than the 40-byte header/],
    ] as const) {
      const server = await startLocalServer();
      const joiner = Bun.spawn([...SELF, "join", server.url, "--once"], { cwd: ROOT, stdout: "ignore", stderr: "pipe", env: { ...process.env, SKEIN_NATS_TOKEN: server.token } });
      const spy = await connect({ servers: server.url, token: server.token });
      let run: bigint | null = null;
      spy.subscribe("skein.call", { callback: (_e, m) => void (run ??= parseRunId(m.json<{ run: string }>().run)) });
      const out = folder();
      try {
        const config = { ...gossip("dmsgd", "ring"), epochs: 200 };
        const error = await trainAcrossProcesses(config, { out, onEpoch: (m) => m.epoch === 1 && spy.publish(subjectOf(run!, 0), forge(run!)) }, { procs: 2, url: server.url, token: server.token, self: SELF }).then(
          () => null,
          (e: Error) => e,
        );
        expect(error?.message ?? "completed", what).toMatch(reason);
        const summary = JSON.parse(readFileSync(join(out, "summary.json"), "utf8"));
        expect(summary.status).toBe("failed");
        expect(summary.epochsDone).toBe(1);
        expect(existsSync(join(out, CHECKPOINT_FILE))).toBe(true);
        expect(await Promise.race([joiner.exited, Bun.sleep(10_000).then(() => "hung")])).toBe(1);
      } finally {
        joiner.kill("SIGKILL");
        await spy.close();
        await server.stop();
      }
    }
  });
});

describe("skein join: processes that wait on a server for runs (as on several hosts)", () => {
  natsTest("two joiners serve a run bitwise equal to one process, then another; a joiner killed mid-run is named by the heartbeat", async () => {
    const server = await startLocalServer();
    const env = { ...process.env, SKEIN_NATS_TOKEN: server.token };
    const joiners = [0, 1].map(() => Bun.spawn([...SELF, "join", server.url], { cwd: ROOT, stdout: "ignore", stderr: "pipe", env }));
    try {
      const across = { procs: 3, url: server.url, token: server.token, self: SELF };
      for (const [algo, topology] of [
        ["decentlam", "ring"],
        ["dmsgd", "one-peer-exponential"],
      ] as const) {
        const config = { ...gossip(algo, topology), workers: 3 };
        let one: Float32Array | null = null;
        let many: Float32Array | null = null;
        await train(config, { onFinish: (p) => (one = p) });
        await trainAcrossProcesses(config, { onFinish: (p) => (many = p) }, across);
        expect(Buffer.from(many!.buffer).equals(Buffer.from(one!.buffer))).toBe(true);
      }
      // No launcher watches a joined process: the others notice its silence.
      const victim = joiners[1]!;
      const ended = trainAcrossProcesses({ ...gossip("dmsgd", "ring"), workers: 3, epochs: 500 }, { onEpoch: (m) => m.epoch === 1 && process.kill(victim.pid, "SIGKILL") }, across).then(
        () => null,
        (e: Error) => e.message,
      );
      const message = await Promise.race([ended, Bun.sleep(30_000).then(() => "hung")]);
      console.log(`joiner killed: ${message}`);
      expect(message).toMatch(new RegExp(`rank \\d \\(pid ${victim.pid} on ${hostname()}\\) sent nothing for \\d+\\.\\d s`));
      // The surviving joiner goes back to waiting: it says the run ended and is still alive.
      await until(() => alive(joiners[0]!.pid), 1_000, "the surviving joiner");
    } finally {
      for (const j of joiners) j.kill("SIGKILL");
      await server.stop();
    }
  });

  test("a bad token, a missing URL, and shared-memory algorithms across processes are refused with exit 2", async () => {
    const refused = async (args: string[], message: RegExp) => {
      const p = cli(args);
      expect(await Promise.race([p.exited, Bun.sleep(30_000).then(() => "hung")])).toBe(2);
      expect(await new Response(p.stderr).text()).toMatch(message);
    };
    await refused(["train", "--algo", "hogwild", "--procs", "2"], /hogwild is a shared-memory algorithm .* runs inside one process/);
    await refused(["train", "--algo", "layerwise", "--procs", "2"], /layerwise is a shared-memory algorithm/);
    await refused(["train", "--algo", "dmsgd", "--procs", "2", "--executor", "deterministic"], /use --executor threads/);
    await refused(["train", "--algo", "lap", "--procs", "2", "--workers", "4", "--replicas", "4"], /one replica group per process; give --replicas 2/);
    await refused(["train", "--algo", "dmsgd", "--nats", "nats://127.0.0.1:4222"], /--nats URL needs --procs/);
    await refused(["train", "--algo", "dmsgd", "--procs", "2", "--nats", "nats://10.1.2.3:4222"], /needs --token/);
    await refused(["join"], /needs the server's URL/);
    if (haveNats) {
      const server = await startLocalServer();
      try {
        await refused(["join", server.url, "--token", "wrong", "--once"], /cannot connect to the NATS server .*Authorization Violation \(check --token\)/);
      } finally {
        await server.stop();
      }
    }
  });
});
