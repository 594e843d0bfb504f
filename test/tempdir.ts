/** Fresh folders under one temp root per test file, removed when the file's tests end. */
import { afterAll } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export function tempFolders(prefix: string): () => string {
  const root = mkdtempSync(join(tmpdir(), prefix));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  let runs = 0;
  return () => {
    const dir = join(root, `run-${runs++}`);
    mkdirSync(dir);
    return dir;
  };
}
