/**
 * Files written so that a reader, or a crash at any instant, sees either the old file or the whole new
 * one; and the clean-up of temp files that a process killed mid-write left behind. Checkpoints, run
 * folders and reports all write through here.
 */
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { open, readdir, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { UserError } from "../errors.ts";

const TEMP_MARK = ".tmp-";
let tempCounter = 0;

/** `<target>.tmp-<pid>-<n>`: the pid says whose it is, so a later run can tell a dead writer's leftovers. */
export const tempPathFor = (path: string) => `${path}${TEMP_MARK}${process.pid}-${tempCounter++}`;

/**
 * Write `data` to `path` so that a reader, or a crash at any instant, sees either the old file or the
 * whole new one: temp file, fsync, rename, fsync of the folder (which makes the rename durable).
 * `durable: false` skips the two flushes: still atomic for readers and for a killed process (the page
 * cache outlives it), not across a power cut.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array | Uint8Array[], { durable = true } = {}): Promise<void> {
  const temp = tempPathFor(path);
  const chunks = typeof data === "string" ? [Buffer.from(data, "utf8")] : Array.isArray(data) ? data : [data];
  try {
    const file = await open(temp, "w");
    try {
      for (const c of chunks) if (c.byteLength > 0) await file.write(c);
      if (durable) await file.sync();
    } finally {
      await file.close();
    }
    await rename(temp, path);
    if (durable) syncFolder(dirname(path));
  } catch (e) {
    await rm(temp, { force: true });
    throw new UserError(`${path}: cannot write (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
}

/**
 * writeFileAtomic for a process that is about to exit and cannot wait for a promise (a stop whose grace
 * period ran out): the same temp file, flush, rename and folder flush, done synchronously.
 */
export function writeFileAtomicNow(path: string, text: string): void {
  const temp = tempPathFor(path);
  try {
    const fd = openSync(temp, "w");
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
    syncFolder(dirname(path));
  } catch (e) {
    rmSync(temp, { force: true });
    throw new UserError(`${path}: cannot write (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
}

/** Flush a folder's entries (renames, new files); not every platform lets a folder be opened, so best effort. */
export function syncFolder(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, "r");
    fsyncSync(fd);
  } catch {
    // a folder that cannot be opened for sync (some platforms) still got the rename
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Whether a process with this id exists (signal 0 probes without signalling; EPERM means it exists). */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Remove `*.tmp-<pid>[-n]` files in `dir` whose writer no longer runs; returns the names removed. */
export async function removeStaleTempFiles(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = /\.tmp-(\d+)(?:-\d+)?$/.exec(name);
    // A live writer's file (ours included) may be in flight.
    if (!m || processAlive(Number(m[1]))) continue;
    await rm(join(dir, name), { force: true });
    removed.push(name);
  }
  return removed;
}

