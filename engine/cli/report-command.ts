/**
 * `skein report DIR... [--out FILE]`: one self-contained HTML page (inline SVG charts) for run folders
 * and experiment folders. Written to a temporary file and renamed, so a failed report leaves nothing.
 */
import { rename, rm, writeFile } from "node:fs/promises";
import { resolve } from "node:path";
import { UserError } from "../errors.ts";
import { buildReport } from "../report/report.ts";
import { formatHelp, parseFlags, type FlagSpec } from "./flags.ts";

export const REPORT_FLAGS: FlagSpec[] = [{ name: "out", type: "string", default: "report.html", valueName: "FILE", help: "where to write the HTML report" }];

export const REPORT_HELP = formatHelp(
  "skein report DIR... [--out FILE]",
  "Write an HTML report for run folders (summary.json) and experiment folders (results.json): first the suite's\nclaims with their verdicts (paired by seed: 95% paired t-interval, exact sign test), then one row per method\n(mean ± sd over seeds, min–max, n, diverged runs counted), accuracy and loss curves (mean line, min–max band),\nstaleness histograms, consensus distance, pipeline inconsistency and schedules, and every run's figures.",
  REPORT_FLAGS,
  "Example: skein report runs/sync runs/layerwise --out report.html",
);

/** Flags that take a value in the next argument (when not written --flag=value). */
const TAKES_VALUE = new Set(REPORT_FLAGS.filter((f) => f.type !== "bool").map((f) => f.name));

/** Positional folders apart from flags: parseFlags accepts no positionals. */
export function splitArgs(argv: string[]): { dirs: string[]; flagArgs: string[] } {
  const dirs: string[] = [];
  const flagArgs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "-h") flagArgs.push(arg);
    else if (arg.startsWith("--")) {
      flagArgs.push(arg);
      if (!arg.includes("=") && TAKES_VALUE.has(arg.slice(2)) && i + 1 < argv.length) flagArgs.push(argv[++i]!);
    } else dirs.push(arg);
  }
  return { dirs, flagArgs };
}

export async function reportCommand(argv: string[]): Promise<number> {
  const { dirs, flagArgs } = splitArgs(argv);
  const flags = parseFlags("report", flagArgs, REPORT_FLAGS);
  if (flags.help) {
    process.stdout.write(REPORT_HELP);
    return 0;
  }
  if (dirs.length === 0) throw new UserError("missing DIR: give at least one run or experiment folder (see skein report --help)");
  const out = resolve(String(flags.values.out));
  const html = await buildReport(dirs);
  const temp = `${out}.tmp-${process.pid}`;
  try {
    await writeFile(temp, html);
    await rename(temp, out);
  } catch (e) {
    await rm(temp, { force: true });
    throw new UserError(`--out ${flags.values.out}: cannot write the report (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  process.stdout.write(`${out}\n`);
  return 0;
}
