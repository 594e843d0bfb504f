/**
 * Bad input on the command line surfaces of runs across processes and of virtual time: each is one
 * line naming the flag and what is wrong with it (a UserError, exit 2), refused before anything
 * connects, starts or is written.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { UserError } from "../engine/errors.ts";
import { joinCommand, natsUrl, processesOf } from "../engine/cli/process-flags.ts";
import { natsServerPath, startLocalServer } from "../engine/distributed/server.ts";
import { HELP } from "../engine/cli/main.ts";
import { flopLine, profileLine } from "../engine/cli/profile-line.ts";
import { TRAIN_FLAGS } from "../engine/cli/train-command.ts";
import { SUITE_NAMES } from "../engine/experiments/suites.ts";
import { SAMPLE_HELP } from "../engine/cli/sample-command.ts";
import { JOIN_HELP } from "../engine/cli/process-flags.ts";
import { TRAIN_HELP } from "../engine/cli/train-command.ts";
import { EXPERIMENT_HELP } from "../engine/cli/experiment-command.ts";
import { userErrorOf, withEnv } from "./helpers.ts";
import { tempFolders } from "./tempdir.ts";
import { calibrateCommand } from "../engine/cli/calibrate-command.ts";
import { checkAcrossProcesses } from "../engine/distributed/exchange.ts";
import { connectTo, withoutCredentials } from "../engine/distributed/transport.ts";
import type { TrainConfig } from "../engine/algorithms/config.ts";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";

const ROOT = join(import.meta.dir, "..");
const natsTest = natsServerPath() !== null ? test : test.skip;

async function userErrorOfAsync(run: () => Promise<unknown>): Promise<string> {
  const error = await run().then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(UserError);
  const text = (error as Error).message;
  expect(text.split("\n")).toHaveLength(1);
  return text;
}

describe("NATS server URLs (--nats, skein join)", () => {
  const trainWith = (nats: string) => processesOf(new Set(["procs", "nats", "token"]), { procs: 2, nats, token: "t" });

  test("a word that is no URL, another scheme, no host or a bad port is refused as not a NATS URL, naming the flag", () => {
    for (const bad of ["garbage", "127.0.0.1:4222", "http://127.0.0.1:4222", "nats://", "nats://127.0.0.1:99999", "nats://[::1"]) {
      expect(userErrorOf(() => trainWith(bad))).toBe(`--nats ${bad}: not a NATS server URL (want nats://HOST:PORT, or tls://, ws://, wss://)`);
    }
  });

  test("nats://, tls://, ws:// and wss:// URLs pass as given", () => {
    for (const good of ["nats://127.0.0.1:4222", "nats://10.0.0.1:4222", "tls://nats.example.org:4222", "ws://127.0.0.1:4223", "wss://host/"]) {
      expect(natsUrl(good, "--nats")).toBe(good);
      expect(trainWith(good)?.url).toBe(good);
    }
  });

  test("skein join refuses a bad URL before connecting", async () => {
    expect(await userErrorOfAsync(() => joinCommand(["garbage", "--once"]))).toBe("skein join garbage: not a NATS server URL (want nats://HOST:PORT, or tls://, ws://, wss://)");
    expect(await userErrorOfAsync(() => joinCommand(["http://127.0.0.1:4222", "--once"]))).toContain("not a NATS server URL");
  });

  for (const name of ["SKEIN_WARM_UP", "SKEIN_IDLE_COMPILER"]) {
    test(`a bad ${name} is refused before any process starts (train) and before taking part in a run (join: nothing listens on port 1, a connection would fail otherwise)`, async () => {
      await withEnv(name, "2", async () => {
        expect(userErrorOf(() => processesOf(new Set(["procs"]), { procs: 2 }))).toBe(`${name}=2: expected 0 or 1`);
        expect(await userErrorOfAsync(() => joinCommand(["nats://127.0.0.1:1", "--once"]))).toBe(`${name}=2: expected 0 or 1`);
      });
    });
  }

  natsTest("train --nats says at once what it waits for (no joined process yet), and Ctrl-C ends the wait", async () => {
    const server = await startLocalServer();
    try {
      const run = Bun.spawn([process.execPath, join(ROOT, "engine/cli/main.ts"), "train", "--procs", "2", "--nats", server.url, "--token", server.token, "--epochs", "1"], { cwd: ROOT, stdout: "ignore", stderr: "pipe" });
      const reader = run.stderr.getReader();
      let seen = "";
      const deadline = Date.now() + 20_000;
      while (!seen.includes("\n") && Date.now() < deadline) {
        const chunk = await Promise.race([reader.read(), Bun.sleep(deadline - Date.now()).then(() => null)]);
        if (!chunk || chunk.done) break;
        seen += new TextDecoder().decode(chunk.value);
      }
      run.kill("SIGINT");
      expect(seen.split("\n")[0]).toBe(`skein train: waiting for 1 process to join on ${server.url} (start them with: skein join ${server.url} --token T; up to 120 s)`);
      expect(await Promise.race([run.exited, Bun.sleep(20_000).then(() => "hung")])).toBe(130);
    } finally {
      await server.stop();
    }
  });
});

describe("what the help and the README list is what exists", () => {
  test("skein --help names every experiment suite", () => {
    const line = HELP.split("\n\n").find((p) => p.includes("experiment "))!.replace(/\s+/g, " ");
    for (const suite of SUITE_NAMES) expect(line).toMatch(new RegExp(`suite: [a-z, ]*\\b${suite}\\b`));
  });

  test("the README's --executor row names every executor", () => {
    const row = readFileSync(join(ROOT, "README.md"), "utf8").split("\n").find((l) => l.startsWith("| `--executor`"))!;
    for (const executor of TRAIN_FLAGS.find((f) => f.name === "executor")!.choices!) expect(row).toContain(`\`${executor}\``);
  });

  test("no flag's help shows an empty default ('(default )')", () => {
    for (const help of [SAMPLE_HELP, JOIN_HELP, TRAIN_HELP, EXPERIMENT_HELP]) expect(help).not.toContain("(default )");
  });
});

describe("--profile", () => {
  test("without --json or --out, the profile is printed: its share outside kernels and the largest kernels' shares", async () => {
    const run = Bun.spawn([process.execPath, join(ROOT, "engine/cli/main.ts"), "train", "--profile", "--epochs", "1", "--model", "mlp:784-16-10", "--data", "synthetic:256"], { cwd: ROOT, stdout: "pipe", stderr: "ignore" });
    expect(await run.exited).toBe(0);
    const lines = (await new Response(run.stdout).text()).trimEnd().split("\n");
    expect(lines.at(-1)).toMatch(/^profile: \d+\.\d% of busy time outside kernels; kernel time: gemm_\w+ \d+\.\d%, /);
  });

  test("the line: shares largest first, at most five named; none without a profile", () => {
    const shares = { a: 0.05, b: 0.4, c: 0.2, d: 0.15, e: 0.1, f: 0.07, g: 0.03 };
    expect(profileLine({ controlOverhead: 0.0991, kernelShares: shares })).toBe("profile: 9.9% of busy time outside kernels; kernel time: b 40.0%, c 20.0%, d 15.0%, e 10.0%, f 7.0%, 2 more");
    expect(profileLine({})).toBeNull();
  });
});

describe("the FLOP accounting line", () => {
  test("without --json, the run says its FLOPs per sample, its GFLOP/s and their share of the ceiling, consistent with its samples/s", async () => {
    const run = Bun.spawn([process.execPath, join(ROOT, "engine/cli/main.ts"), "train", "--epochs", "1", "--model", "mlp:784-16-10", "--data", "synthetic:256"], { cwd: ROOT, stdout: "pipe", stderr: "ignore" });
    expect(await run.exited).toBe(0);
    const text = await new Response(run.stdout).text();
    const printedRate = /^test accuracy: .*, ([\d.]+)(k?) samples\/s, kernels/m.exec(text)!;
    const rate = Number(printedRate[1]) * (printedRate[2] === "k" ? 1000 : 1);
    const m = /^compute: ([\d.]+) MFLOP per training sample, ([\d.]+) GFLOP\/s on 1 core: (\d+)% of its multiply-add ceiling \(([\d.]+) GFLOP\/s per core\)$/m.exec(text);
    expect(m).not.toBeNull();
    const [mflop, gflops, percent, ceiling] = m!.slice(1).map(Number) as [number, number, number, number];
    // mlp:784-16-10: forward 2·(784·16 + 16·10), weight gradients the same, input gradient of the second layer 2·16·10.
    expect(mflop).toBeCloseTo((2 * (784 * 16 + 16 * 10) * 2 + 2 * 16 * 10) / 1e6, 2);
    // Each printed to 3 digits or 1 decimal: they agree to within their rounding.
    expect(Math.abs(gflops - (mflop * rate) / 1e3)).toBeLessThanOrEqual(0.05 + 0.01 * gflops);
    expect(Math.abs(percent - (100 * gflops) / ceiling)).toBeLessThanOrEqual(1);
  });

  test("the line", () => {
    const flops = { trainingPerSample: 1_007_104, forwardPerSample: 469_504, gflopsPerSec: 54.76, ceilingGflopsPerCore: 56.69, cores: 2, ofCeiling: 0.483 };
    expect(flopLine(flops)).toBe("compute: 1.01 MFLOP per training sample, 54.8 GFLOP/s on 2 cores: 48% of their multiply-add ceiling (56.7 GFLOP/s per core)");
    expect(flopLine({ ...flops, cores: 1, ofCeiling: 0.966 })).toBe("compute: 1.01 MFLOP per training sample, 54.8 GFLOP/s on 1 core: 97% of its multiply-add ceiling (56.7 GFLOP/s per core)");
    // A large model: GFLOP per sample, not an exponent.
    expect(flopLine({ ...flops, trainingPerSample: 2_345_678_901 })).toStartWith("compute: 2.35 GFLOP per training sample, ");
  });
});

describe("skein calibrate --out", () => {
  const freshDir = tempFolders("skein-calibrate-out-");

  test("a place the table cannot be written is refused before any measuring (it was found after a minute or more)", async () => {
    const dir = freshDir();
    const file = join(dir, "a-file");
    writeFileSync(file, "x");
    expect(await userErrorOfAsync(() => calibrateCommand(["--out", join(file, "costs.json")]))).toMatch(/^--out .*a-file\/costs\.json: cannot write in .*a-file \(E\w+\)$/);
    expect(await userErrorOfAsync(() => calibrateCommand(["--out", dir]))).toBe(`--out ${dir}: is a folder; name the table's file`);
  });
});

describe("runs across processes: the advice names the flag that sets the count", () => {
  const base: TrainConfig = { algo: "sync", model: "mlp:784-16-10", data: "synthetic:256", epochs: 1, batch: 32, workers: 2, executor: "threads", seed: 1, optimizer: defaultOptimizer("sgd") };

  test("a pipeline with fewer stages than processes says --stages; sync says --workers", () => {
    expect(userErrorOf(() => checkAcrossProcesses({ ...base, algo: "gpipe", pipeline: { stages: 2, microbatches: 4 } }, 3))).toBe("--procs 3 with 2 stages: every process needs a stage; give --stages 3 or more");
    expect(userErrorOf(() => checkAcrossProcesses(base, 3))).toBe("--procs 3 with 2 workers: every process needs a worker; give --workers 3 or more");
  });

  test("resuming, the sizes are the checkpoint's: the advice is a --procs that fits them", () => {
    expect(userErrorOf(() => checkAcrossProcesses({ ...base, algo: "lap", workers: 4, async: { replicas: 2 } }, 3, true))).toBe("--procs 3: lap runs one replica group per process; this run has 2 replica groups; resume it with --procs 2");
    expect(userErrorOf(() => checkAcrossProcesses({ ...base, algo: "1f1b", pipeline: { stages: 2, microbatches: 4 } }, 3, true))).toBe("--procs 3 with 2 stages: every process needs a stage; resume it with --procs 2 or fewer");
  });
});

describe("NATS credentials in a URL", () => {
  test("a failed connection's message does not repeat the URL's user:password", async () => {
    const text = await userErrorOfAsync(() => connectTo("nats://someone:secretpw@127.0.0.1:1", undefined));
    expect(text).toStartWith("cannot connect to the NATS server at nats://…@127.0.0.1:1");
    expect(text).not.toContain("secretpw");
    expect(withoutCredentials("ws://a:b@host:8080/x")).toBe("ws://…@host:8080/x");
    expect(withoutCredentials("nats://127.0.0.1:4222")).toBe("nats://127.0.0.1:4222");
  });
});
