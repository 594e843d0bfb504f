/**
 * Stopping a run whose step outlasts the stop's grace period: the process exits at the end of that
 * grace, and the run folder it leaves says "stopped", never "running" with no process behind it.
 * The trainer here hangs inside a kernel (test/fixtures/hung-run.ts), the limit of a long step.
 */
import { expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { tempFolders } from "./tempdir.ts";
import { summaryOf, waitFor } from "./helpers.ts";
import { launcherWatch, type Launcher } from "../engine/cli/signals.ts";

const FIXTURE = resolve(import.meta.dir, "fixtures/hung-run.ts");
const folder = tempFolders("skein-stop-");
const linux = process.platform === "linux";

/** Once the run has opened its folder and its worker has entered the hung kernel (5 calls into the first step). */
async function untilHung(dir: string): Promise<void> {
  expect(await waitFor(() => existsSync(join(dir, "summary.json")))).toBe(true);
  expect(summaryOf(dir)).toMatchObject({ status: "running", epochsDone: 0 });
  // The first step starts right after the folder is written; give the worker time to reach the hang,
  // so that the signal finds it inside the kernel rather than before the epoch.
  await Bun.sleep(1_000);
}

test("SIGTERM while a step is still running when the grace period ends: exit 143 and the folder says stopped", async () => {
  const dir = join(folder(), "run");
  const child = Bun.spawn([process.execPath, FIXTURE, dir], { stdout: "ignore", stderr: "pipe" });
  await untilHung(dir);
  child.kill("SIGTERM");
  expect(await child.exited).toBe(143);
  expect(await new Response(child.stderr).text()).toBe("skein: stopped: SIGTERM; its step did not end within 1.5 s, so the epoch in progress is lost\n");
  expect(summaryOf(dir)).toMatchObject({ status: "stopped", epochsDone: 0, failedEpoch: 1, reason: "stopped: SIGTERM" });
  expect(existsSync(join(dir, ".skein-lock"))).toBe(false);
});

// A launcher that exits is one event: it starts the stop once, and the run gets the whole grace period
// (watching the launcher again every poll once it was gone counted as a second signal, "exit now").
test.if(linux)("the launcher above a trainer exits while a step is running: the trainer stops and the folder says stopped", async () => {
  const dir = join(folder(), "launched");
  // `sh -c` counts as a launcher while it waits for its child (the `; true` keeps it from exec'ing it).
  const launcher = Bun.spawn(["setsid", "sh", "-c", `"${process.execPath}" "${FIXTURE}" "${dir}"; true`], { stdout: "ignore", stderr: "ignore" });
  await untilHung(dir);
  launcher.kill("SIGKILL");
  expect(await waitFor(() => summaryOf(dir).status !== "running" && !existsSync(join(dir, ".skein-lock")), 15_000)).toBe(true);
  expect(summaryOf(dir)).toMatchObject({ status: "stopped", failedEpoch: 1, reason: expect.stringMatching(/^stopped: its launcher 'sh -c' \(pid \d+\) exited$/) });
});

test("a launcher found gone is reported once, however many polls follow", () => {
  const launchers: Launcher[] = [{ pid: 10, start: "1", command: "npm exec" }, { pid: 11, start: "2", command: "sh -c" }];
  const goneNow = new Set<number>();
  const reports: number[] = [];
  const poll = launcherWatch(launchers, (l) => reports.push(l.pid), (l) => !goneNow.has(l.pid));
  poll();
  expect(reports).toEqual([]);
  goneNow.add(11);
  for (let i = 0; i < 5; i++) poll();
  goneNow.add(10);
  poll();
  expect(reports).toEqual([11]);
});
