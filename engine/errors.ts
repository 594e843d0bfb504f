/**
 * Bad input from the user (a file, a flag, a config). The CLI prints `skein: <message>` on one line
 * and exits with code 2, no stack trace. Messages name what and where: "data/train-images.gz: wrong
 * magic number 0x00000802 (want 0x00000803)".
 */
export class UserError extends Error {
  override name = "UserError";
}

/** A failure inside a run (a worker threw, a wait timed out): reported as one line, exit code 1. */
export class RunError extends Error {
  override name = "RunError";
}

/**
 * Training produced a non-finite loss. A RunError (exit 1): the input was valid, the run failed. It
 * carries the epoch and the configuration's suspects so callers need not parse the message.
 */
export class DivergedError extends RunError {
  override name = "DivergedError";
  constructor(
    readonly epoch: number,
    readonly loss: number,
    readonly advice: string,
  ) {
    super(`training diverged in epoch ${epoch} (loss ${loss}): ${advice}`);
  }
}

/** A wait of the orchestrator on its workers ran past its deadline: the run is stuck, not slow. */
export class WatchdogError extends RunError {
  override name = "WatchdogError";
}

/**
 * The user stopped the run (SIGINT, SIGTERM, or the launcher it was started through went away): the run
 * stops at once and its folder says so. `exitCode` is the shell's 128 + signal number.
 */
export class StoppedError extends RunError {
  override name = "StoppedError";
  constructor(
    readonly why: string,
    readonly exitCode: number,
  ) {
    super(`stopped: ${why}`);
  }
}
