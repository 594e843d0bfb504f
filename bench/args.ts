/**
 * Command-line flags for the bench scripts: node:util's parseArgs (strict: an unknown or malformed flag
 * is an error), and one line naming the script and the flag on bad input, exit code 2, no stack trace.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

export function benchArgs<T extends ParseArgsConfig>(script: string, config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config); // strict by default: unknown flags and missing values throw
  } catch (e) {
    fail(script, (e as Error).message);
  }
}

/** A numeric flag's value (or `fallback` when absent); anything but a finite number in [min, max] is refused. */
export function numberFlag(script: string, name: string, text: string | undefined, fallback: number, { min = -Infinity, max = Infinity, integer = false } = {}): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (text.trim() === "" || !Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
    const range = max < Infinity ? (min > -Infinity ? ` in [${min}, ${max}]` : ` ≤ ${max}`) : min > -Infinity ? ` ≥ ${min}` : "";
    fail(script, `--${name} ${text}: want ${integer ? "a whole number" : "a number"}${range}`);
  }
  return value;
}

/** A comma-separated list of whole numbers ≥ 0. */
export function intListFlag(script: string, name: string, text: string): number[] {
  const list = text.split(",").map((s) => Number(s.trim()));
  if (text.trim() === "" || list.some((x) => !Number.isInteger(x) || x < 0)) fail(script, `--${name} ${text}: want comma-separated whole numbers`);
  return list;
}

/** A flag that names one of `choices` (or `fallback` when absent). */
export function choiceFlag<C extends string>(script: string, name: string, text: string | undefined, choices: readonly C[], fallback: C): C {
  if (text === undefined) return fallback;
  if (!(choices as readonly string[]).includes(text)) fail(script, `--${name} ${text}: want one of ${choices.join(", ")}`);
  return text as C;
}

function fail(script: string, message: string): never {
  console.error(`${script}: ${message}`);
  process.exit(2);
}
