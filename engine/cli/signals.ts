/**
 * Stopping: SIGINT and SIGTERM stop a run at its workers' next synchronisation point, and its folder
 * records status "stopped"; a second signal, or a run that has not stopped within a grace period (a
 * step longer than that), exits at once. The run folder is consistent at every instant, so nothing is
 * lost but the epoch, and before exiting this way the process rewrites its summary from "running" to
 * "stopped" (markOpenFoldersStopped): only kill -9 leaves a folder saying "running" with no process.
 *
 * The documented launch path, `npx bun run skein train ...`, is a chain of launchers (npm exec, sh -c,
 * bun run) above the trainer. A signal to the outermost one ends it alone: the rest are re-parented
 * and the trainer would go on writing its run folder with nobody to stop it. So the trainer notes the
 * launchers above it at start, and stops as for a signal when any of them is gone.
 */
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { markOpenFoldersStopped } from "../run-folder.ts";
import { requestStop } from "../train.ts";

/** After the stop was asked for, how long the run gets to finish writing its folder. */
const STOP_GRACE_MS = 1_500;
const LAUNCHER_POLL_MS = 200;
/** Copies of one signal (to the group, forwarded by a launcher) arrive within this. */
const REPEAT_MS = 500;

const SIGNALS = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;

let installed = false;

export function installStopHandlers(): void {
  if (installed) return;
  installed = true;
  let stoppingSince = 0;
  let stoppedWhy = "";
  // Exiting before the run wrote its own end (its workers had not reached a point where they stop):
  // its folder must not go on saying "running".
  const exitNow = (exitCode: number, because: string) => {
    markOpenFoldersStopped(`stopped: ${stoppedWhy}`);
    process.stderr.write(`skein: stopped: ${stoppedWhy}; ${because}, so the epoch in progress is lost\n`);
    process.exit(exitCode);
  };
  const stop = (why: string, exitCode: number) => {
    // A second signal means "now", unless it is the same one arriving twice: Ctrl-C reaches the whole
    // process group, and a launcher above may forward its copy a moment later.
    if (stoppingSince > 0) {
      if (Date.now() - stoppingSince > REPEAT_MS) exitNow(exitCode, `a second signal (${why}) asked to stop at once`);
      return;
    }
    stoppingSince = Date.now();
    stoppedWhy = why;
    // No run open (another command, or between runs): nothing to finish writing.
    if (requestStop(why, exitCode) === 0) {
      process.stderr.write(`skein: stopped: ${why}\n`);
      process.exit(exitCode);
    }
    setTimeout(() => exitNow(exitCode, `its step did not end within ${STOP_GRACE_MS / 1000} s`), STOP_GRACE_MS).unref();
  };
  for (const [signal, code] of Object.entries(SIGNALS)) process.on(signal, () => stop(signal, code));
  const launchers = launcherAncestors();
  if (launchers.length === 0) return;
  const watch = launcherWatch(launchers, (gone) => {
    if (stoppingSince === 0) stop(`its launcher '${gone.command}' (pid ${gone.pid}) exited`, SIGNALS.SIGHUP);
  });
  setInterval(watch, LAUNCHER_POLL_MS).unref();
}

export interface Launcher {
  pid: number;
  /** Start time in clock ticks since boot: a pid reused by another process has another one. */
  start: string;
  command: string;
}

/**
 * The processes above this one that only launch it: npm exec / npx, npm run, bun run / bunx, and
 * `sh -c` between them; the walk stops at the first that is not (the user's shell, a test runner,
 * a service manager). Linux only (/proc); elsewhere none, and signals reach the trainer directly.
 */
export function launcherAncestors(): Launcher[] {
  const out: Launcher[] = [];
  let pid = process.ppid;
  for (let depth = 0; depth < 8 && pid > 1; depth++) {
    const argv = commandLine(pid);
    const stat = procStat(pid);
    if (!argv || !stat || !isLauncher(argv)) break;
    out.push({ pid, start: stat.start, command: `${basename(argv[0]!)} ${argv[1] ?? ""}`.trim() });
    pid = stat.ppid;
  }
  return out;
}

export function isLauncher(argv: string[]): boolean {
  const [first = "", second = ""] = argv;
  const name = basename(first);
  if (name === "npm" || name === "npx" || name === "bunx") return true; // npm sets its title to "npm exec ..."
  if (name === "node" || name === "nodejs") return /npm-cli|npx-cli|[\\/]npm[\\/]|[\\/]bin[\\/]np[mx]$/.test(second);
  if (name === "bun") return second === "run" || second === "x" || second === "exec";
  if (["sh", "bash", "dash", "zsh"].includes(name)) return second === "-c";
  return false;
}

function commandLine(pid: number): string[] | null {
  try {
    const text = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    const argv = text.split("\0").filter((a) => a !== "");
    // npm rewrites its process title into argv[0] as one string: "npm exec bun run skein ..."
    return argv.length === 1 ? argv[0]!.split(" ") : argv;
  } catch {
    return null;
  }
}

function procStat(pid: number): { state: string; ppid: number; start: string } | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return { state: fields[0]!, ppid: Number(fields[1]), start: fields[19]! };
  } catch {
    return null;
  }
}

/**
 * One poll of the launchers: the first time one of them is found gone, `onGone` hears of it, and never
 * again. A launcher's exit is one event; reported at every later poll it would count as a second
 * signal, which ends the run at once instead of letting it stop.
 */
export function launcherWatch(launchers: Launcher[], onGone: (gone: Launcher) => void, isAlive: (l: Launcher) => boolean = alive): () => void {
  let reported = false;
  return () => {
    if (reported) return;
    const gone = launchers.find((l) => !isAlive(l));
    if (!gone) return;
    reported = true;
    onGone(gone);
  };
}

/** Still the same process, and not a zombie waiting for its parent to reap it. */
function alive(l: Launcher): boolean {
  const stat = procStat(l.pid);
  return stat !== null && stat.start === l.start && stat.state !== "Z" && stat.state !== "X";
}
