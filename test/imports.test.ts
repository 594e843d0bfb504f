/**
 * The doors between the engine's rooms open one way (docs/ARCHITECTURE.md):
 *
 *   cli → experiments, report → train → distributed → algorithms → runtime, model, optim, data, checkpoint
 *       → kernels, memory → asm
 *
 * This test reads every import of engine/ and workers/ (import and export-from statements, type-only
 * ones included, and import("…") expressions) and fails when one runs up that order, when a file is in
 * no room, or when the folders import each other in a cycle. engine/errors.ts and engine/rng.ts import
 * nothing of the engine and may be used from every room; engine/user-file.ts imports only errors.ts.
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

/**
 * Upward imports allowed for now: none. (The runtime used to import algorithms/ and workers/; it now
 * receives the role table from above.) An entry that no longer occurs fails the test, so this list
 * can only shrink.
 */
const KNOWN_VIOLATIONS: readonly string[] = [];

const ROOT = resolve(import.meta.dir, "..");

/** The rooms, top first: a file may import its own room's files and any room below. */
const ROOMS: { name: string; holds: (path: string) => boolean }[] = [
  { name: "cli", holds: (p) => p.startsWith("engine/cli/") },
  { name: "experiments, report", holds: (p) => p.startsWith("engine/experiments/") || p.startsWith("engine/report/") },
  // The run itself: train.ts and the files it splits into, and the worker entry that runs role programs.
  { name: "train", holds: (p) => /^engine\/(train|run|session|config-check)[^/]*\.ts$/.test(p) || p.startsWith("engine/train/") || p.startsWith("workers/") },
  // Runs that span processes: the transport over NATS and the executor that links a process to the others.
  { name: "distributed", holds: (p) => p.startsWith("engine/distributed/") },
  { name: "algorithms", holds: (p) => p.startsWith("engine/algorithms/") },
  { name: "runtime, model, optim, data, checkpoint", holds: (p) => ["runtime", "model", "optim", "data", "checkpoint"].some((r) => p.startsWith(`engine/${r}/`)) },
  { name: "kernels, memory", holds: (p) => p.startsWith("engine/kernels/") || p.startsWith("engine/memory/") },
  { name: "asm", holds: (p) => p.startsWith("asm/") || p.startsWith("build/") },
  { name: "shared leaves", holds: (p) => p === "engine/errors.ts" || p === "engine/rng.ts" || p === "engine/user-file.ts" },
];

interface Import {
  from: string;
  to: string;
  line: number;
}

/** Source with comments blanked (same length, newlines kept, so offsets still give line numbers). */
function withoutComments(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\/|(^|[^:"'`\\])\/\/[^\n]*/g, (m, before: string | undefined) =>
    before === undefined ? m.replace(/[^\n]/g, " ") : before + " ".repeat(m.length - before.length),
  );
}

/** The module specifiers a TypeScript file imports or re-exports, with their line numbers. */
function importsOf(source: string): { specifier: string; line: number }[] {
  const code = withoutComments(source);
  const found: { specifier: string; index: number }[] = [];
  const patterns = [
    // import … from "x", import type … from "x", export … from "x" (clauses hold no "=", "(" or ";")
    /^[ \t]*(?:import|export)\b[^;=()]*?\bfrom\s*["']([^"']+)["']/gm,
    // import "x" (side effects only)
    /^[ \t]*import\s*["']([^"']+)["']/gm,
    // import("x"): dynamic imports and type-level import("x").T
    /\bimport\(\s*["']([^"']+)["']\s*\)/g,
  ];
  for (const pattern of patterns) for (const m of code.matchAll(pattern)) found.push({ specifier: m[1]!, index: m.index! + m[0].indexOf(m[1]!) });
  return found.map(({ specifier, index }) => ({ specifier, line: code.slice(0, index).split("\n").length }));
}

function tsFilesUnder(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith(".ts"))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)));
}

const SCANNED = [...tsFilesUnder("engine"), ...tsFilesUnder("workers")];

/** Every import between files of the repository, from engine/ and workers/. Packages and node: are not doors. */
function importGraph(files = SCANNED): Import[] {
  return files.flatMap((from) =>
    importsOf(readFileSync(join(ROOT, from), "utf8"))
      .filter(({ specifier }) => specifier.startsWith("."))
      .map(({ specifier, line }) => ({ from, to: relative(ROOT, resolve(ROOT, dirname(from), specifier)), line })),
  );
}

const roomOf = (path: string): number => ROOMS.findIndex((r) => r.holds(path));

/** The unit of the cycle check: a folder under engine/ (or workers/, asm/), a top-level file's room otherwise. */
function folderOf(path: string): string {
  const parts = path.split("/");
  if (parts[0] !== "engine") return parts[0]!;
  if (parts.length > 2) return `engine/${parts[1]}`;
  const room = roomOf(path);
  return room >= 0 && ROOMS[room]!.name === "train" ? "engine/train" : path;
}

interface DoorReport {
  /** Imports that run up the order, "from -> to" with the line and the two rooms. */
  upward: { edge: string; detail: string }[];
  /** Files that belong to no room (add a room, or put the file in one). */
  unplaced: string[];
  /** Cycles between folders, each as "a → b → … → a" with one import per step. */
  cycles: string[];
}

/**
 * Checks an import graph against the rooms; `allowed` edges ("from -> to") are neither reported nor
 * followed in cycles. `files`: every file to place in a room (those that import nothing too).
 */
function checkDoors(imports: Import[], allowed: ReadonlySet<string> = new Set(), scanned: string[] = []): DoorReport {
  const report: DoorReport = { upward: [], unplaced: [], cycles: [] };
  const files = new Set([...scanned, ...imports.flatMap((i) => [i.from, i.to])]);
  report.unplaced = [...files].filter((f) => roomOf(f) < 0).sort();
  const followed: Import[] = [];
  for (const i of imports) {
    const edge = `${i.from} -> ${i.to}`;
    if (allowed.has(edge)) continue;
    followed.push(i);
    const [a, b] = [roomOf(i.from), roomOf(i.to)];
    if (a >= 0 && b >= 0 && b < a) {
      report.upward.push({ edge, detail: `${i.from}:${i.line} imports ${i.to}: "${ROOMS[a]!.name}" may not import "${ROOMS[b]!.name}", a room above it` });
    }
  }
  // Folder graph, one witness import per folder edge; cycles = strongly connected components (Tarjan).
  const witness = new Map<string, Import>();
  const next = new Map<string, Set<string>>();
  for (const i of followed) {
    const [a, b] = [folderOf(i.from), folderOf(i.to)];
    if (a === b) continue;
    if (!next.has(a)) next.set(a, new Set());
    next.get(a)!.add(b);
    if (!witness.has(`${a}|${b}`)) witness.set(`${a}|${b}`, i);
  }
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const visit = (v: string) => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of next.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) report.cycles.push(describeCycle(new Set(component), next, witness));
    }
  };
  for (const v of [...next.keys()].sort()) if (!index.has(v)) visit(v);
  return report;
}

/** One cycle through a strongly connected set of folders, each step shown with an import that makes it. */
function describeCycle(component: Set<string>, next: Map<string, Set<string>>, witness: Map<string, Import>): string {
  const start = [...component].sort()[0]!;
  // Breadth-first from start back to start inside the component: the shortest cycle through it.
  const parent = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift()!;
    for (const w of [...(next.get(v) ?? [])].sort()) {
      if (!component.has(w)) continue;
      if (w === start) {
        const path = [start];
        for (let u: string | undefined = v; u !== start && u !== undefined; u = parent.get(u)) path.unshift(u);
        path.unshift(start);
        const steps = path.slice(1).map((to, k) => {
          const i = witness.get(`${path[k]}|${to}`)!;
          return `${path[k]} → ${to} (${i.from}:${i.line} imports ${i.to})`;
        });
        return `cycle between folders: ${steps.join("; ")}`;
      }
      if (!parent.has(w) && w !== start) {
        parent.set(w, v);
        queue.push(w);
      }
    }
  }
  return `cycle between folders: ${[...component].sort().join(", ")}`;
}

function explain(report: DoorReport): string {
  return [
    ...report.upward.map((u) => `upward import: ${u.detail}`),
    ...report.unplaced.map((f) => `${f} is in no room: place it in ROOMS (test/imports.test.ts) and docs/ARCHITECTURE.md`),
    ...report.cycles,
  ].join("\n");
}

describe("import graph of engine/", () => {
  const imports = importGraph();

  test("no import runs up the door order, every file is in a room, no cycle between folders", () => {
    const report = checkDoors(imports, new Set(KNOWN_VIOLATIONS), SCANNED);
    expect(explain(report)).toBe("");
  });

  test("every allowed violation still occurs (the list only shrinks)", () => {
    const edges = new Set(imports.map((i) => `${i.from} -> ${i.to}`));
    expect(KNOWN_VIOLATIONS.filter((v) => !edges.has(v))).toEqual([]);
  });

  test("the parser sees what the engine imports", () => {
    // The graph is not empty, and imports of each form are found in the real files.
    const has = (from: string, to: string) => imports.some((i) => i.from === from && i.to === to);
    expect(has("engine/train.ts", "engine/errors.ts")).toBe(true); // import { … } from
    expect(has("engine/model/network.ts", "engine/rng.ts")).toBe(true); // import type
    expect(has("engine/data/index.ts", "engine/data/source.ts")).toBe(true); // export { … } from
    expect(has("engine/kernels/build.ts", "asm/build.ts")).toBe(true); // typeof import("…")
  });
});

describe("the checker itself", () => {
  test("parses import, import type, export-from, side-effect and import() forms, multi-line, not in comments", () => {
    const source = [
      'import { a } from "./a.ts";',
      'import type { B } from "../b.ts";',
      "import {",
      "  c,",
      "  d,",
      '} from "./c.ts";',
      'export { e } from "./e.ts";',
      'export * from "./f.ts";',
      'import "./g.ts";',
      'type H = import("./h.ts").H;',
      '// import { x } from "./commented.ts";',
      '/* import { y } from "./block.ts"; */',
      'const url = "http://example.com"; // a string with // in it',
      'export const from = "./not-an-import.ts";',
    ].join("\n");
    expect(importsOf(source)).toEqual([
      { specifier: "./a.ts", line: 1 },
      { specifier: "../b.ts", line: 2 },
      { specifier: "./c.ts", line: 6 },
      { specifier: "./e.ts", line: 7 },
      { specifier: "./f.ts", line: 8 },
      { specifier: "./g.ts", line: 9 },
      { specifier: "./h.ts", line: 10 },
    ]);
  });

  test("reports an upward import, naming the file, the line and both rooms", () => {
    const report = checkDoors([{ from: "engine/model/layers.ts", to: "engine/train.ts", line: 7 }]);
    expect(report.upward.map((u) => u.detail)).toEqual([
      'engine/model/layers.ts:7 imports engine/train.ts: "runtime, model, optim, data, checkpoint" may not import "train", a room above it',
    ]);
  });

  test("reports a cycle between folders of one room, and a file in no room", () => {
    const report = checkDoors([
      { from: "engine/model/a.ts", to: "engine/optim/b.ts", line: 1 },
      { from: "engine/optim/b.ts", to: "engine/model/c.ts", line: 2 },
      { from: "engine/model/a.ts", to: "engine/newroom/x.ts", line: 3 },
    ]);
    expect(report.upward).toEqual([]);
    expect(report.cycles).toEqual([
      "cycle between folders: engine/model → engine/optim (engine/model/a.ts:1 imports engine/optim/b.ts); engine/optim → engine/model (engine/optim/b.ts:2 imports engine/model/c.ts)",
    ]);
    expect(report.unplaced).toEqual(["engine/newroom/x.ts"]);
  });

  test("downward and same-room imports, and the shared leaves, are fine", () => {
    const report = checkDoors([
      { from: "engine/cli/main.ts", to: "engine/train.ts", line: 1 },
      { from: "engine/train.ts", to: "engine/algorithms/sync.ts", line: 1 },
      { from: "engine/algorithms/sync.ts", to: "engine/runtime/sync.ts", line: 1 },
      { from: "engine/runtime/context.ts", to: "engine/model/network.ts", line: 1 },
      { from: "engine/model/network.ts", to: "engine/kernels/abi.ts", line: 1 },
      { from: "engine/kernels/build.ts", to: "asm/build.ts", line: 1 },
      { from: "engine/memory/arena.ts", to: "engine/errors.ts", line: 1 },
      { from: "engine/data/order.ts", to: "engine/rng.ts", line: 1 },
    ]);
    expect(explain(report)).toBe("");
  });
});
