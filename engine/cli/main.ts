#!/usr/bin/env bun
/**
 * skein's command line. Errors are one line on stderr: bad input (UserError) exits 2, a failed run
 * (RunError) exits 1; a stack trace only with SKEIN_DEBUG=1.
 */
import { RunError, StoppedError, UserError } from "../errors.ts";
import { installStopHandlers } from "./signals.ts";
import { trainCommand } from "./train-command.ts";
import { topologyCommand } from "./topology-command.ts";
import { scheduleCommand } from "./schedule-command.ts";
import { reportCommand } from "./report-command.ts";
import { experimentCommand } from "./experiment-command.ts";
import { calibrateCommand } from "./calibrate-command.ts";
import { sampleCommand } from "./sample-command.ts";
import { joinCommand } from "./process-flags.ts";
import { formatColumns, HELP_COLUMNS, wrap } from "./flags.ts";
import { SUITE_NAMES } from "../experiments/suites.ts";

const VERSION = "0.1.0";

const COMMANDS: Record<string, { summary: string; run: (argv: string[]) => Promise<number> }> = {
  train: { summary: "train a model on CPU workers (see skein train --help)", run: trainCommand },
  schedule: { summary: "build, check and simulate a pipeline schedule (see skein schedule --help)", run: scheduleCommand },
  experiment: { summary: `run a comparison suite: ${SUITE_NAMES.join(", ")} (see skein experiment --help)`, run: experimentCommand },
  report: { summary: "an HTML report (tables, inline SVG charts) of run or experiment folders (see skein report --help)", run: reportCommand },
  topology: { summary: "a gossip topology: degree, stochasticity, rho and spectral gap (see skein topology --help)", run: topologyCommand },
  calibrate: { summary: "measure the simulated executor's cost table on this machine (see skein calibrate --help)", run: calibrateCommand },
  join: { summary: "wait on a NATS server for runs that span hosts, and take part in them (see skein join --help)", run: joinCommand },
  sample: { summary: "text from a character-level language model's checkpoint (see skein sample --help)", run: sampleCommand },
};

export const HELP = `${wrap(`skein ${VERSION}: parallel neural-network training on CPU cores, WebAssembly SIMD kernels in workers sharing one memory`, HELP_COLUMNS).join("\n")}

Usage: skein <command> [flags]

Commands:
${formatColumns(Object.entries(COMMANDS).map(([name, c]) => [name, c.summary] as const))}

Run 'skein <command> --help' for a command's flags.
`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === "--help" || command === "-h" || command === "help") {
    process.stdout.write(HELP);
    return command === undefined ? 2 : 0;
  }
  if (command === "--version") {
    process.stdout.write(`skein ${VERSION}\n`);
    return 0;
  }
  const entry = COMMANDS[command];
  if (!entry) throw new UserError(`unknown command '${command}' (commands: ${Object.keys(COMMANDS).join(", ")}; see skein --help)`);
  return entry.run(rest);
}

export async function runCli(argv: string[]): Promise<never> {
  let code: number;
  installStopHandlers();
  try {
    code = await main(argv);
  } catch (e) {
    code = reportError(e);
  }
  // Worker threads and timers must not keep a finished (or failed) run alive.
  process.exit(code);
}

function reportError(e: unknown): number {
  if (process.env.SKEIN_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
  if (e instanceof UserError) {
    process.stderr.write(`skein: ${e.message}\n`);
    return 2;
  }
  if (e instanceof StoppedError) {
    process.stderr.write(`skein: ${e.message}\n`);
    return e.exitCode;
  }
  const message = e instanceof Error ? e.message : String(e);
  process.stderr.write(`skein: ${e instanceof RunError ? "" : "internal error: "}${message.split("\n")[0]}\n`);
  return 1;
}

if (import.meta.main) await runCli(process.argv.slice(2));
