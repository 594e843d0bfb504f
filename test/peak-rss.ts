/**
 * A child's peak resident memory, measured so that the test runner's own size does not count.
 *
 * On Linux, wait4's ru_maxrss of a child is never below the peak RSS of the process that spawned it:
 * Bun spawns with vfork semantics and the kernel folds the peak of the address space a process leaves
 * at exec into the new image's. A whole-suite test runner can pass 1 GiB, so a child bounded under
 * 1 GiB read "1.1 GiB" in one fresh-clone run. A small intermediate process (a few tens of MB) runs the
 * command instead and reports the child's exit code, output and peak RSS as JSON.
 */
const RUNNER = `
const [cmd, cwd, env] = JSON.parse(await Bun.stdin.text());
const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe", cwd: cwd ?? undefined, env });
process.stdout.write(JSON.stringify({ code: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString(), maxRssBytes: r.resourceUsage?.maxRSS ?? null }));
`;

export interface MeasuredRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** The child's peak RSS, bytes (at most the intermediate process's few tens of MB of its own). */
  maxRssBytes: number;
}

export function spawnSyncWithPeakRss(cmd: string[], options: { cwd?: string; env?: Record<string, string | undefined> } = {}): MeasuredRun {
  const job = JSON.stringify([cmd, options.cwd ?? null, options.env ?? process.env]);
  const r = Bun.spawnSync([process.execPath, "-e", RUNNER], { stdin: Buffer.from(job), stdout: "pipe", stderr: "inherit" });
  if (r.exitCode !== 0) throw new Error(`the RSS-measuring runner exited with ${r.exitCode}`);
  const out = JSON.parse(r.stdout.toString()) as MeasuredRun & { maxRssBytes: number | null };
  return { ...out, maxRssBytes: out.maxRssBytes ?? NaN };
}
