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

/** The training loss stopped being finite: the run diverged in `epoch` (1-based). */
export class DivergedError extends RunError {
  override name = "DivergedError";
  constructor(
    readonly epoch: number,
    readonly loss: number,
  ) {
    super(`training diverged in epoch ${epoch} (loss ${loss}): lower --lr`);
  }
}
