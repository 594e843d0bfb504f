/**
 * Reading a small text file a user names on the command line (a cost table, a network model, a
 * pipeline schedule): only a regular file, and only up to a size such a file can have. `readFileSync`
 * on a named pipe blocks until a writer appears (no signal handler runs meanwhile), and on /dev/zero or
 * a huge file it reads until memory runs out; both are bad input, refused at once with one line.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { UserError } from "./errors.ts";

/** More than any table or schedule skein writes (the default cost table is about 60 KB). */
export const MAX_USER_TEXT_BYTES = 16 << 20;

/**
 * The file's text (UTF-8, malformed bytes replaced), or a UserError that starts with `label`
 * ("--costs runs/x.json") and says what is wrong: missing or unreadable, not a regular file, or larger
 * than `maxBytes`.
 */
export function readUserTextFile(path: string, label: string, maxBytes = MAX_USER_TEXT_BYTES): string {
  return new TextDecoder().decode(readUserFile(path, label, maxBytes));
}

/** The file's bytes, refused as readUserTextFile refuses. */
export function readUserFile(path: string, label: string, maxBytes = MAX_USER_TEXT_BYTES): Uint8Array {
  let fd: number;
  try {
    // O_NONBLOCK: opening a named pipe for reading would otherwise wait for a writer.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw new UserError(`${label}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    const stat = fstatSync(fd);
    if (stat.isDirectory()) throw new UserError(`${label}: is a folder, not a file`);
    if (!stat.isFile()) throw new UserError(`${label}: not a regular file`);
    if (stat.size > maxBytes) throw new UserError(`${label}: ${stat.size} bytes, more than such a file can be (limit ${maxBytes})`);
    // One byte more than the file's size: a file that grows while it is read fills it, and is refused.
    const bytes = new Uint8Array(stat.size + 1);
    let filled = 0;
    for (let n = -1; n !== 0 && filled < bytes.length; filled += n) n = readSync(fd, bytes, filled, bytes.length - filled, null);
    if (filled > stat.size) throw new UserError(`${label}: the file grew while it was read`);
    return bytes.subarray(0, filled);
  } finally {
    closeSync(fd);
  }
}
