/**
 * Files a flag names (--costs, --network, --schedule) are read only when they are regular files of a
 * plausible size: a named pipe used to block the process (no signal handler runs while readFileSync
 * waits for a writer), a device such as /dev/zero used to read until memory ran out.
 */
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readUserTextFile } from "../engine/user-file.ts";
import { pipelineScheduleFlags } from "../engine/algorithms/pipeline/pipeline-flags.ts";
import { loadDataset } from "../engine/data/source.ts";
import { UserError } from "../engine/errors.ts";
import { defaultCostTable, loadCostTable, resolveNetwork } from "../engine/runtime/costs.ts";
import { userErrorOf } from "./helpers.ts";
import { loadFolders } from "../engine/report/load.ts";
import { tempFolders } from "./tempdir.ts";

const freshDir = tempFolders("skein-user-file-");

function fifoIn(dir: string): string {
  const path = join(dir, "pipe.json");
  expect(spawnSync("mkfifo", [path]).status).toBe(0);
  return path;
}

describe("readUserTextFile", () => {
  test("a regular file's text, whole", () => {
    const path = join(freshDir(), "t.json");
    const text = `{"a": "${"é".repeat(5000)}"}`;
    writeFileSync(path, text);
    expect(readUserTextFile(path, "--costs t.json")).toBe(text);
    writeFileSync(path, "");
    expect(readUserTextFile(path, "--costs t.json")).toBe("");
  });

  test("a named pipe, a device, a folder, a missing file and one over the limit are refused with one line naming the flag", () => {
    const dir = freshDir();
    const big = join(dir, "big.json");
    writeFileSync(big, "x".repeat(101));
    const cases: [string, number | undefined, string][] = [
      [fifoIn(dir), undefined, "not a regular file"],
      ["/dev/zero", undefined, "not a regular file"],
      [dir, undefined, "is a folder, not a file"],
      [join(dir, "missing.json"), undefined, "cannot read it (ENOENT)"],
      [big, 100, "101 bytes, more than such a file can be (limit 100)"],
    ];
    for (const [path, limit, why] of cases) expect(userErrorOf(() => readUserTextFile(path, `--costs ${path}`, limit))).toBe(`--costs ${path}: ${why}`);
    expect(readUserTextFile(big, "--costs big.json", 101)).toHaveLength(101);
  });

  test("--schedule naming a named pipe is refused at once, not waited on", () => {
    const path = fifoIn(freshDir());
    expect(existsSync(path)).toBe(true);
    expect(userErrorOf(() => pipelineScheduleFlags(new Set(["schedule"]), { schedule: path }, {}))).toBe(`--schedule ${path}: not a regular file`);
  });

  test("text:FILE data: a named pipe or device is refused at once, bytes that are not UTF-8 are a UserError (was an internal TypeError)", async () => {
    const dir = freshDir();
    const binary = join(dir, "bytes.bin");
    writeFileSync(binary, new Uint8Array([0x61, 0xff, 0xfe, 0x62]));
    for (const [path, why] of [[fifoIn(dir), "not a regular file"], ["/dev/zero", "not a regular file"], [binary, "is not UTF-8 text"]] as const) {
      const error = await loadDataset(`text:${path}:8`).then(() => null, (e: unknown) => e);
      expect(error).toBeInstanceOf(UserError);
      expect((error as Error).message).toContain(why);
    }
  });

  test("--costs and --network naming a named pipe or a device are refused at once; a missing network file names the presets", () => {
    const pipe = fifoIn(freshDir());
    expect(userErrorOf(() => loadCostTable(pipe))).toBe(`--costs ${pipe}: not a regular file`);
    expect(userErrorOf(() => resolveNetwork(defaultCostTable(), "/dev/zero"))).toBe("--network /dev/zero: not a regular file");
    expect(userErrorOf(() => resolveNetwork(defaultCostTable(), pipe))).toBe(`--network ${pipe}: not a regular file`);
    expect(userErrorOf(() => resolveNetwork(defaultCostTable(), "5gbe"))).toMatch(/^--network 5gbe: neither shm, .* nor a file$/);
  });

  test("skein report of a run folder whose metrics.jsonl is a named pipe is refused at once (it waited for a writer)", async () => {
    const dir = freshDir();
    writeFileSync(join(dir, "summary.json"), JSON.stringify({ algo: "sync", model: "mlp:784-16-10", data: "synthetic:64", epochs: 1 }));
    expect(spawnSync("mkfifo", [join(dir, "metrics.jsonl")]).status).toBe(0);
    const error = await loadFolders([dir]).then(() => null, (e: unknown) => e);
    expect(error).toBeInstanceOf(UserError);
    expect((error as Error).message).toBe(`${join(dir, "metrics.jsonl")}: not a regular file`);
  });
});
