/**
 * Command-line flags, declared as data: each command lists its flags once and gets parsing,
 * validation and its --help text from the same table. `node:util`'s parseArgs splits the words into
 * tokens; this file checks them against the table. Any problem is a UserError naming the flag.
 */
import { parseArgs } from "node:util";
import { UserError } from "../errors.ts";

export type FlagValue = string | number | boolean;

export interface FlagSpec {
  name: string; // without the leading dashes
  type: "int" | "number" | "string" | "bool";
  help: string;
  /** Shown in --help and used when the flag is absent (undefined: no value). */
  default?: FlagValue;
  min?: number;
  max?: number;
  /** Exclusive lower bound (e.g. a learning rate must be > 0). */
  above?: number;
  choices?: readonly string[];
  valueName?: string;
}

export interface ParsedFlags {
  values: Record<string, FlagValue | undefined>;
  /** Flags the user actually wrote (a resumed run only accepts some of them). */
  given: Set<string>;
  help: boolean;
}

export function parseFlags(command: string, argv: string[], specs: FlagSpec[]): ParsedFlags {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const values: Record<string, FlagValue | undefined> = {};
  for (const s of specs) values[s.name] = s.default;
  const given = new Set<string>();
  let help = false;
  const { tokens } = parseArgs({
    args: argv,
    strict: false,
    allowPositionals: true,
    tokens: true,
    options: Object.fromEntries(specs.map((s) => [s.name, { type: s.type === "bool" ? ("boolean" as const) : ("string" as const) }])),
  });
  for (const token of tokens) {
    if (token.kind === "option-terminator") continue;
    if (token.kind === "positional") throw new UserError(`unexpected argument '${token.value}' for 'skein ${command}' (see skein ${command} --help)`);
    if (token.rawName === "--help" || token.rawName === "-h") {
      help = true;
      continue;
    }
    const spec = token.rawName.startsWith("--") ? byName.get(token.name) : undefined;
    if (!spec) throw new UserError(`unknown flag ${token.rawName} for 'skein ${command}' (see skein ${command} --help)`);
    if (given.has(spec.name)) throw new UserError(`--${spec.name} given twice`);
    given.add(spec.name);
    if (spec.type === "bool") {
      if (token.value !== undefined) throw new UserError(`--${spec.name} takes no value`);
      values[spec.name] = true;
      continue;
    }
    // parseArgs takes the next word as the value whatever it looks like; a flag there means none was given.
    const raw = token.value;
    if (raw === undefined || (!token.inlineValue && raw.startsWith("--") && raw.length > 2)) {
      throw new UserError(`--${spec.name} needs a value (${spec.valueName ?? spec.type})`);
    }
    values[spec.name] = convert(spec, raw);
  }
  return { values, given, help };
}

function convert(spec: FlagSpec, raw: string): FlagValue {
  const flag = `--${spec.name}`;
  if (spec.type === "string") {
    if (raw === "") throw new UserError(`${flag} needs a non-empty value`);
    if (spec.choices && !spec.choices.includes(raw)) throw new UserError(`${flag} ${raw}: expected one of ${spec.choices.join(", ")}`);
    return raw;
  }
  const n = Number(raw);
  const kind = spec.type === "int" ? "an integer" : "a number";
  if (raw.trim() === "" || !Number.isFinite(n) || (spec.type === "int" && !Number.isInteger(n))) {
    throw new UserError(`${flag}: expected ${kind}, got '${raw}'`);
  }
  if (spec.min !== undefined && n < spec.min) throw new UserError(`${flag} ${raw}: must be at least ${spec.min}`);
  if (spec.max !== undefined && n > spec.max) throw new UserError(`${flag} ${raw}: must be at most ${spec.max}`);
  if (spec.above !== undefined && !(n > spec.above)) throw new UserError(`${flag} ${raw}: must be greater than ${spec.above}`);
  return n;
}

/** Help text is laid out for terminals of this many columns. */
export const HELP_COLUMNS = 100;
/** A name longer than this starts its description on the next line. */
const NAME_COLUMN_MAX = 26;

/**
 * Two columns, names then descriptions, wrapped to HELP_COLUMNS: at least two spaces between a name
 * and its description, continuation lines aligned under the description.
 */
export function formatColumns(rows: readonly (readonly [string, string])[], indent = 2): string {
  const fits = rows.filter(([name]) => name.length <= NAME_COLUMN_MAX).map(([name]) => name.length);
  const nameWidth = Math.max(0, ...fits) + 2;
  const descriptionAt = indent + nameWidth;
  const lines: string[] = [];
  for (const [name, description] of rows) {
    const wrapped = wrap(description, HELP_COLUMNS - descriptionAt);
    if (name.length > NAME_COLUMN_MAX) {
      lines.push(" ".repeat(indent) + name);
      for (const line of wrapped) lines.push(" ".repeat(descriptionAt) + line);
      continue;
    }
    wrapped.forEach((line, i) => lines.push(i === 0 ? " ".repeat(indent) + name.padEnd(nameWidth) + line : " ".repeat(descriptionAt) + line));
  }
  return lines.join("\n");
}

/** Words of `text` in lines of at most `width` characters (a longer word gets a line of its own). */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line || lines.length === 0) lines.push(line);
  return lines;
}

/** A titled two-column section of help text (the algorithms, suites, schedules or topologies a command knows). */
export function formatSection(title: string, rows: readonly (readonly [string, string])[]): string {
  return `${title}:\n${formatColumns(rows)}`;
}

export function formatHelp(usage: string, summary: string, specs: FlagSpec[], footer = ""): string {
  const rows = specs.map((s) => {
    const value = s.valueName ?? s.choices?.join("|") ?? s.type.toUpperCase();
    const left = `--${s.name}${s.type === "bool" ? "" : ` ${value}`}`;
    const dflt = s.default !== undefined && s.default !== "" && s.type !== "bool" ? ` (default ${s.default})` : "";
    return [left, s.help + dflt] as const;
  });
  rows.push(["--help", "show this help"]);
  const text = wrap(summary, HELP_COLUMNS).join("\n");
  return `Usage: ${usage}\n\n${text}\n\nFlags:\n${formatColumns(rows)}\n${footer ? `\n${footer}\n` : ""}`;
}
