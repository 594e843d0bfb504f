/**
 * Command-line flags, declared as data: each command lists its flags once and gets parsing,
 * validation and its --help text from the same table. Any problem is a UserError naming the flag.
 */
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
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--help" || arg === "-h") {
      help = true;
      continue;
    }
    if (!arg.startsWith("--")) throw new UserError(`unexpected argument '${arg}' for 'skein ${command}' (see skein ${command} --help)`);
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const spec = byName.get(name);
    if (!spec) throw new UserError(`unknown flag --${name} for 'skein ${command}' (see skein ${command} --help)`);
    if (given.has(name)) throw new UserError(`--${name} given twice`);
    given.add(name);
    if (spec.type === "bool") {
      if (eq >= 0) throw new UserError(`--${name} takes no value`);
      values[name] = true;
      continue;
    }
    let raw: string | undefined;
    if (eq >= 0) raw = arg.slice(eq + 1);
    else {
      raw = argv[++i];
      if (raw === undefined || (raw.startsWith("--") && raw.length > 2)) throw new UserError(`--${name} needs a value (${spec.valueName ?? spec.type})`);
    }
    values[name] = convert(spec, raw);
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

export function formatHelp(usage: string, summary: string, specs: FlagSpec[], footer = ""): string {
  const rows = specs.map((s) => {
    const value = s.valueName ?? s.choices?.join("|") ?? s.type.toUpperCase();
    const left = `--${s.name}${s.type === "bool" ? "" : ` ${value}`}`;
    const dflt = s.default !== undefined && s.type !== "bool" ? ` (default ${s.default})` : "";
    return [left, s.help + dflt] as const;
  });
  const width = Math.max(...rows.map(([l]) => l.length)) + 2;
  const lines = rows.map(([l, r]) => `  ${l.padEnd(width)}${r}`);
  return `Usage: ${usage}\n\n${summary}\n\nFlags:\n${lines.join("\n")}\n  ${"--help".padEnd(width)}show this help\n${footer ? `\n${footer}\n` : ""}`;
}
