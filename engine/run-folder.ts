/**
 * A run folder as a small transactional store. What a reader (skein report, `--resume`) finds after
 * any stop — a finished run, a failure, a signal, kill -9 at any instant — describes one run and
 * agrees with itself:
 *
 *  - Every whole-file write goes through `writeFileAtomic`: a temp file named after this process,
 *    flushed, renamed over the target, the folder flushed. A reader sees the old file or the new one.
 *    Temp files left by a process that no longer exists are removed when the folder is next opened.
 *  - An epoch commits in this order: its metrics line (appended, flushed), its trace events (appended),
 *    the checkpoint (atomic), then summary.json (atomic). A kill between the metrics line and the
 *    checkpoint leaves a line for an epoch the checkpoint does not hold; every line carries its epoch,
 *    and opening the folder to resume drops lines past the checkpoint's epoch, so no epoch is lost or
 *    repeated.
 *  - summary.json exists from the start and always says what state the run is in: "running" (written
 *    at the start and after every epoch, so a killed run's folder still reads as a run, with how far it
 *    got), "completed", "stopped" (a signal), "failed" or "diverged" (with the epoch and the reason).
 *  - trace.json streams: each epoch's events are appended as lines before a fixed closing line, so the
 *    trace costs memory for one epoch only; an epoch marker event ends each epoch's lines, which is where
 *    a resumed run cuts the trace back to its checkpoint.
 *  - A folder that already holds a run is refused unless the caller resumes it or asked to overwrite it.
 */
import { closeSync, existsSync, fsyncSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import { copyFile, mkdir, open, readdir, rename, rm } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { UserError } from "./errors.ts";
import { CHECKPOINT_FILE } from "./checkpoint/checkpoint.ts";
import { processAlive, removeStaleTempFiles, syncFolder, tempPathFor, writeFileAtomic, writeFileAtomicNow } from "./checkpoint/atomic-file.ts";

export { CHECKPOINT_FILE, removeStaleTempFiles, writeFileAtomic };

export const METRICS_FILE = "metrics.jsonl";
export const SUMMARY_FILE = "summary.json";
export const TRACE_FILE = "trace.json";
/** Files that make a folder a run folder; --overwrite removes exactly these (and stale temp files). */
export const RUN_FILES = [METRICS_FILE, SUMMARY_FILE, TRACE_FILE, CHECKPOINT_FILE, "diverged.txt"] as const;

/** Holds the pid of the process writing the folder; a second writer is refused while that process lives. */
export const LOCK_FILE = ".skein-lock";

export type RunStatus = "running" | "completed" | "stopped" | "failed" | "diverged";

export interface OpenRunFolder {
  /** The folder to write. */
  out: string;
  /** Resuming from this checkpoint's folder, whose epochs 1..epochsDone are done. */
  resume?: { from: string; epochsDone: number };
  /** Replace a run already in `out`. */
  overwrite?: boolean;
}

/** The chrome trace file: `{"displayTimeUnit":"ms","traceEvents":[` + event lines + `]}`. */
const TRACE_HEAD = '{"displayTimeUnit":"ms","traceEvents":[\n';
const TRACE_TAIL = "\n]}\n";
const EPOCH_MARKER = "skein epoch end";

/** The folders this process has open: a process that must exit mid-epoch marks them (markOpenFoldersStopped). */
const openFolders = new Set<RunFolder>();

/**
 * For a process about to exit while a run is still inside an epoch (a stop whose grace period ran out
 * before the workers reached a point where they stop): every folder it has open, whose summary says
 * "running", is rewritten to say "stopped" with `reason`, as a stop that ends normally writes it, and
 * released. The epoch in progress is lost either way; what must not happen is a folder that says
 * "running" with no process behind it. Synchronous: the caller exits right after.
 */
export function markOpenFoldersStopped(reason: string): void {
  for (const folder of openFolders) {
    try {
      folder.markStoppedNow(reason);
    } catch {
      // exiting anyway: a folder that cannot be written keeps its last summary
    }
  }
}

export class RunFolder {
  private traceFd: number | null = null;
  /** Bytes of trace.json before its closing line. */
  private traceLength = 0;
  private traceEvents = 0;
  /** What summary.json says now: the last summary this process wrote. */
  private summary: { status?: string; epochsDone?: number } | null = null;

  private constructor(readonly dir: string) {}

  /**
   * Open `out` for a run: create it, refuse a folder holding another run (unless overwriting or
   * resuming it), remove dead writers' temp files, and when resuming cut metrics and trace back to the
   * checkpoint's epoch (copying them over first when the resumed run writes to a new folder).
   */
  static async open({ out, resume, overwrite = false }: OpenRunFolder): Promise<RunFolder> {
    try {
      await mkdir(out, { recursive: true });
    } catch (e) {
      throw new UserError(`--out ${out}: cannot create the run folder (${(e as NodeJS.ErrnoException).code ?? e})`);
    }
    takeLock(out);
    try {
      const folder = await RunFolder.openLocked(out, resume, overwrite);
      openFolders.add(folder);
      return folder;
    } catch (e) {
      releaseLock(out);
      throw e;
    }
  }

  private static async openLocked(out: string, resume: OpenRunFolder["resume"], overwrite: boolean): Promise<RunFolder> {
    await removeStaleTempFiles(out);
    const sameFolder = resume !== undefined && sameDir(resume.from, out);
    const held = RUN_FILES.filter((f) => existsSync(join(out, f)));
    if (held.length > 0 && !sameFolder) {
      if (!overwrite) {
        throw new UserError(
          `--out ${out} already holds a run (${held.join(", ")}); pass --overwrite to replace it` +
            (resume || !held.includes(CHECKPOINT_FILE) ? "" : `, or --resume ${out} to continue it`),
        );
      }
      for (const f of held) await rm(join(out, f), { force: true });
      syncFolder(out);
    }
    const folder = new RunFolder(out);
    if (resume && !sameFolder) {
      // The new folder tells the whole run: the epochs done before, and a checkpoint to resume from.
      for (const f of [METRICS_FILE, TRACE_FILE, CHECKPOINT_FILE]) {
        const from = join(resume.from, f);
        if (!existsSync(from)) continue;
        const temp = tempPathFor(join(out, f));
        await copyFile(from, temp);
        await rename(temp, join(out, f));
      }
      syncFolder(out);
    }
    // A run's folder always has its metrics file, empty until the first epoch ends.
    if (!existsSync(join(out, METRICS_FILE))) await writeFileAtomic(join(out, METRICS_FILE), "");
    if (resume) {
      await folder.cutMetrics(resume.epochsDone);
      folder.openTrace(resume.epochsDone);
    } else {
      folder.openTrace(0);
    }
    return folder;
  }

  /** Keep the metrics lines of epochs 1..epochsDone, once each (a kill can leave one past the checkpoint). */
  private async cutMetrics(epochsDone: number): Promise<void> {
    const path = join(this.dir, METRICS_FILE);
    if (!existsSync(path)) return;
    const text = readFileSync(path, "utf8");
    const kept: string[] = [];
    const seen = new Set<number>();
    for (const line of text.split("\n")) {
      if (line.trim() === "") continue;
      let epoch: unknown;
      try {
        epoch = JSON.parse(line).epoch;
      } catch {
        continue; // a line cut short by a crash
      }
      if (typeof epoch !== "number" || epoch > epochsDone || seen.has(epoch)) continue;
      seen.add(epoch);
      kept.push(line);
    }
    const next = kept.map((l) => l + "\n").join("");
    if (next !== text) await writeFileAtomic(path, next);
  }

  /** Open trace.json for appending, keeping the events of epochs 1..keepEpochs of a resumed run. */
  private openTrace(keepEpochs: number): void {
    const path = join(this.dir, TRACE_FILE);
    let lines: string[] = [];
    if (keepEpochs > 0 && existsSync(path)) {
      const text = readFileSync(path, "utf8");
      const body = text.startsWith(TRACE_HEAD) ? text.slice(TRACE_HEAD.length).split("\n") : [];
      // Everything up to the marker of the last epoch kept; anything after it is an epoch the checkpoint lacks.
      let end = 0;
      body.forEach((line, i) => {
        if (!line.includes(EPOCH_MARKER)) return;
        const epoch = /"epoch":(\d+)/.exec(line);
        if (epoch && Number(epoch[1]) <= keepEpochs) end = i + 1;
      });
      lines = body.slice(0, end).map((l) => l.replace(/,$/, ""));
    }
    const body = lines.join(",\n");
    const text = TRACE_HEAD + body + TRACE_TAIL;
    const temp = tempPathFor(path);
    const fd = openSync(temp, "w");
    writeSync(fd, text);
    fsyncSync(fd);
    closeSync(fd);
    renameSync(temp, path);
    this.traceFd = openSync(path, "r+");
    this.traceLength = Buffer.byteLength(TRACE_HEAD + body);
    this.traceEvents = lines.length;
  }

  /** Append an epoch's metrics line and flush it: it must be on disk before the checkpoint that includes the epoch. */
  async appendMetrics(metrics: { epoch: number }): Promise<void> {
    const file = await open(join(this.dir, METRICS_FILE), "a");
    try {
      await file.write(JSON.stringify(metrics) + "\n");
      await file.sync();
    } catch (e) {
      throw new UserError(`${join(this.dir, METRICS_FILE)}: cannot write (${(e as NodeJS.ErrnoException).code ?? e})`);
    } finally {
      await file.close();
    }
  }

  /**
   * Append one epoch's trace events, then the epoch marker, in one write before the closing line: the
   * file is valid JSON after every epoch, and memory holds one epoch's events at a time.
   */
  appendTrace(epoch: number, events: object[], ts: number): void {
    if (this.traceFd === null) return;
    const marker = { name: EPOCH_MARKER, ph: "i", s: "g", ts, pid: 0, tid: 0, args: { epoch } };
    const lines = [...events, marker].map((e) => JSON.stringify(e));
    const chunk = (this.traceEvents > 0 ? ",\n" : "") + lines.join(",\n");
    const bytes = Buffer.from(chunk + TRACE_TAIL, "utf8");
    writeSync(this.traceFd, bytes, 0, bytes.byteLength, this.traceLength);
    this.traceLength += bytes.byteLength - Buffer.byteLength(TRACE_TAIL);
    this.traceEvents += lines.length;
  }

  checkpointPath(): string {
    return join(this.dir, CHECKPOINT_FILE);
  }

  /**
   * Atomic always (a kill leaves the old summary or the new one); flushed to disk only for the final
   * one: a "running" summary lost to a power cut leaves the previous one, which is just as true.
   */
  async writeSummary<S extends { status?: string; epochsDone?: number }>(summary: S): Promise<void> {
    this.summary = summary;
    await writeFileAtomic(join(this.dir, SUMMARY_FILE), JSON.stringify(summary, null, 2) + "\n", { durable: summary.status !== "running" });
  }

  /** See markOpenFoldersStopped: the last summary, now "stopped" in the epoch after its last one. */
  markStoppedNow(reason: string): void {
    const last = this.summary;
    if (last?.status === "running") {
      const stopped = { ...last, status: "stopped", failedEpoch: (last.epochsDone ?? 0) + 1, reason };
      writeFileAtomicNow(join(this.dir, SUMMARY_FILE), JSON.stringify(stopped, null, 2) + "\n");
      this.summary = stopped;
    }
    this.close();
  }

  close(): void {
    openFolders.delete(this);
    if (this.traceFd !== null) closeSync(this.traceFd);
    this.traceFd = null;
    releaseLock(this.dir);
  }
}

/**
 * Claim `dir` for this process: create the lock file exclusively; one left by a process that is gone
 * (kill -9) is taken over, one of a live process (two runs on one folder) is refused.
 */
function takeLock(dir: string): void {
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, "wx");
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw new UserError(`--out ${dir}: cannot lock the run folder (${(e as NodeJS.ErrnoException).code ?? e})`);
    }
    let holder = NaN;
    try {
      holder = Number(readFileSync(path, "utf8").trim());
    } catch {
      // removed meanwhile: try again
    }
    if (processAlive(holder)) {
      throw new UserError(`--out ${dir}: process ${holder} is writing this run folder${holder === process.pid ? " (this process)" : ""}; stop it first`);
    }
    rmSync(path, { force: true });
  }
  throw new UserError(`--out ${dir}: another process keeps taking the run folder's lock`);
}

function releaseLock(dir: string): void {
  const path = join(dir, LOCK_FILE);
  try {
    if (Number(readFileSync(path, "utf8").trim()) === process.pid) rmSync(path, { force: true });
  } catch {
    // already gone
  }
}

const sameDir = (a: string, b: string): boolean => resolve(a) === resolve(b);

/** Names in `dir` (tests: no temp file is left behind). */
export function listFolder(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}
