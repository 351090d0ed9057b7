// Typed errors of the LoRA trainer and its files. Each names what is at fault (the checkpoint
// file and field, the option that differs) so that a refused resume says what to change.
import { GpuffiError } from "../../ffi/errors.ts";

/** Training failed or was refused; `code` is one of the ERR_TRAIN_* codes. */
export class TrainingError extends GpuffiError {
  override name = "TrainingError";
  constructor(code: `ERR_TRAIN_${string}`, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** A checkpoint directory is missing, incomplete or inconsistent, or cannot be written. */
export class CheckpointError extends TrainingError {
  override name = "CheckpointError";
  constructor(
    /** The checkpoint directory or file, when one is at fault. */
    readonly path: string | undefined,
    detail: string,
    options?: { cause?: unknown; code?: `ERR_TRAIN_${string}` },
  ) {
    super(options?.code ?? "ERR_TRAIN_CHECKPOINT", path === undefined ? `checkpoint: ${detail}` : `checkpoint ${path}: ${detail}`, options);
  }
}

/** A checkpoint was made with another base model, data set or options than the run that would resume it. */
export class ResumeMismatchError extends CheckpointError {
  override name = "ResumeMismatchError";
  constructor(
    /** One line per difference: `base model: …`, `data: …`, `option "lr": …`. */
    readonly differences: readonly string[],
  ) {
    super(undefined, `cannot resume: ${differences.join("; ")}`, { code: "ERR_TRAIN_RESUME_MISMATCH" });
  }
}

/**
 * Training data that cannot be used: unreadable or empty files, bad JSON, missing or mistyped
 * fields, token ids outside the vocabulary, sequences too short, too long or with nothing to learn.
 */
export class TrainingDataError extends TrainingError {
  override name = "TrainingDataError";
  constructor(
    /** Where: "data.jsonl:12", "corpus.txt", or undefined for data given in memory. */
    readonly source: string | undefined,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super("ERR_TRAIN_DATA", source === undefined ? detail : `${source}: ${detail}`, options);
  }
}

/** How one rank process of a data-parallel run ended. */
export interface RankExit {
  readonly rank: number;
  /** The exit code, or null when a signal ended it. */
  readonly exitCode: number | null;
  /** The signal that ended it ("SIGKILL"), or null. */
  readonly signal: string | null;
  /** The error the rank reported before it exited, when it could. */
  readonly error?: { readonly name: string; readonly code?: string; readonly message: string };
  /** Its last lines of output (stdout and stderr). */
  readonly output: readonly string[];
  /** The launcher signalled it to end, because another rank had failed. */
  readonly endedByLauncher: boolean;
}

/**
 * A rank process of a data-parallel run failed (crashed, was killed, reported an error or exited
 * early); the launcher then ended the others. `rank` names the rank that failed first on its own,
 * not one that only lost its peers or was ended by the launcher.
 */
export class RankFailedError extends TrainingError {
  override name = "RankFailedError";
  constructor(
    readonly rank: number,
    readonly ranks: number,
    /** How the failed rank ended. */
    readonly exit: RankExit,
    /** How every rank ended, by rank (undefined for a rank that was never started). */
    readonly exits: readonly (RankExit | undefined)[],
    message: string,
  ) {
    super("ERR_TRAIN_RANK_FAILED", message);
  }
}
