// A training checkpoint is a directory of two files, no pickle:
//   adapter.gguf           the adapter as llama.cpp loads it (encodeLoraGguf)
//   optimizer.safetensors  per trainable tensor "<weight>.lora_a" / ".lora_b" its AdamW moments
//                          "<name>.m" and "<name>.v" (F32, PyTorch shapes [rank, nIn] / [nOut, rank]),
//                          and in __metadata__ (strings only) the rest of the state: step, data
//                          position, seed, optimizer, schedule and options (JSON), the base model's
//                          identity and the data set's fingerprint.
// A checkpoint is written into "<dir>.tmp" and renamed into place, so a crash leaves the previous
// checkpoint or the new one, never a mixture; a resume compares the base, data and options first.
import { createHash } from "node:crypto";
import { mkdir, open, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { type SafetensorsTensorSpec, encodeSafetensors, openGguf, openSafetensors } from "../../formats/index.ts";
import { CheckpointError, ResumeMismatchError } from "./errors.ts";
import { type LoraWeights, checkLoraWeights, encodeLoraGguf, readLoraGguf } from "./lora-weights.ts";

/** The AdamW moments of one trainable tensor, in its layout (m and v as long as the tensor). */
export interface OptimizerMoments {
  readonly m: Float32Array;
  readonly v: Float32Array;
}

/** Everything besides the adapter that a resumed run needs to continue exactly. */
export interface TrainingState {
  /** Optimizer steps taken. */
  readonly step: number;
  /** Data position: the epoch, and the index of the next sequence in that epoch's order. */
  readonly epoch: number;
  readonly index: number;
  readonly seed: number;
  /** The training options, JSON-able (no undefined, NaN, Infinity, bigint or functions inside). */
  readonly options: Record<string, unknown>;
  /** `baseIdentity(base)` of the base model trained on. */
  readonly baseIdentity: string;
  readonly dataFingerprint: string;
  /** By trainable tensor name ("blk.0.attn_q.weight.lora_a"): one entry for each, or none (SGD keeps no moments). */
  readonly moments: ReadonlyMap<string, OptimizerMoments>;
  /** The optimizer's name ("adamw", "sgd"); default: `options.optimizer` when it is a string. */
  readonly optimizer?: string;
  /** The learning-rate schedule's state, JSON-able, when it is more than a function of `step` and the options. */
  readonly schedule?: Readonly<Record<string, unknown>>;
}

export const CHECKPOINT_ADAPTER_FILE = "adapter.gguf";
export const CHECKPOINT_OPTIMIZER_FILE = "optimizer.safetensors";
const FORMAT = "gpuffi-lora-checkpoint";
const VERSION = "1";

/** Where each JSON value sits ("options.lr"), for errors. */
function checkJson(value: unknown, at: string, where: string | undefined): void {
  const fail = (what: string) => {
    throw new CheckpointError(where, `${at} is ${what}, which JSON cannot carry`);
  };
  if (value === null || typeof value === "string" || typeof value === "boolean") return;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) fail(String(value));
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((item, i) => checkJson(item, `${at}[${i}]`, where));
    return;
  }
  if (typeof value === "object" && (Object.getPrototypeOf(value) === Object.prototype || Object.getPrototypeOf(value) === null)) {
    for (const [key, item] of Object.entries(value)) checkJson(item, `${at}.${key}`, where);
    return;
  }
  fail(value === undefined ? "undefined" : typeof value === "object" ? `a ${value.constructor?.name ?? "object"}` : `a ${typeof value}`);
}

/** JSON with object keys sorted at every level, so that equal values compare equal as strings. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) => {
    if (typeof item !== "object" || item === null || Array.isArray(item)) return item;
    return Object.fromEntries(Object.entries(item).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)));
  });
}

/** The trainable tensors of `weights` with their PyTorch shapes (outermost first), in file order. */
function parameters(weights: LoraWeights): { name: string; shape: [number, number] }[] {
  return weights.pairs.flatMap((pair) => [
    { name: `${pair.weight}.lora_a`, shape: [weights.rank, pair.nIn] as [number, number] },
    { name: `${pair.weight}.lora_b`, shape: [pair.nOut, weights.rank] as [number, number] },
  ]);
}

function checkState(state: TrainingState, weights: LoraWeights): void {
  for (const key of ["step", "epoch", "index"] as const) {
    if (!Number.isSafeInteger(state[key]) || state[key] < 0) throw new CheckpointError(undefined, `${key} must be a non-negative integer, got ${state[key]}`);
  }
  if (!Number.isSafeInteger(state.seed)) throw new CheckpointError(undefined, `seed must be an integer, got ${state.seed}`);
  for (const key of ["baseIdentity", "dataFingerprint"] as const) {
    if (typeof state[key] !== "string") throw new CheckpointError(undefined, `${key} must be a string`);
  }
  if (typeof state.options !== "object" || state.options === null || Array.isArray(state.options)) throw new CheckpointError(undefined, "options must be an object");
  checkJson(state.options, "options", undefined);
  if (state.schedule !== undefined) checkJson(state.schedule, "schedule", undefined);
  if (state.optimizer !== undefined && typeof state.optimizer !== "string") throw new CheckpointError(undefined, "optimizer must be a string");
  if (state.moments.size === 0) return;
  const params = parameters(weights);
  const known = new Set(params.map((p) => p.name));
  for (const name of state.moments.keys()) {
    if (!known.has(name)) throw new CheckpointError(undefined, `moments for "${name}", which is not a tensor of the adapter`);
  }
  for (const { name, shape } of params) {
    const moments = state.moments.get(name);
    if (moments === undefined) throw new CheckpointError(undefined, `no moments for "${name}" (moments are kept for every tensor or for none)`);
    for (const part of ["m", "v"] as const) {
      const values = moments[part];
      if (!(values instanceof Float32Array) || values.length !== shape[0] * shape[1]) {
        throw new CheckpointError(undefined, `moment ${part} of "${name}" needs ${shape[0] * shape[1]} f32 values, has ${values?.length}`);
      }
    }
  }
}

const bytesOf = (values: Float32Array) => new Uint8Array(values.buffer, values.byteOffset, values.byteLength);

/** Writes `bytes` to `path` and flushes them to the disk before returning. */
async function writeDurably(path: string, bytes: Uint8Array): Promise<void> {
  const handle = await open(path, "w");
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, (error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return false;
    throw error;
  });
}

/** Encodes the optimizer file: moments (if any) and the state's metadata. */
function encodeOptimizer(weights: LoraWeights, state: TrainingState): Uint8Array {
  const optimizer = state.optimizer ?? (typeof state.options.optimizer === "string" ? state.options.optimizer : undefined);
  const metadata: Record<string, string> = {
    format: FORMAT,
    version: VERSION,
    step: String(state.step),
    epoch: String(state.epoch),
    index: String(state.index),
    seed: String(state.seed),
    options: canonicalJson(state.options),
    base_identity: state.baseIdentity,
    data_fingerprint: state.dataFingerprint,
  };
  if (optimizer !== undefined) metadata.optimizer = optimizer;
  if (state.schedule !== undefined) metadata.schedule = canonicalJson(state.schedule);
  const tensors: SafetensorsTensorSpec[] = state.moments.size === 0 ? [] : parameters(weights).flatMap(({ name, shape }) => {
    const { m, v } = state.moments.get(name)!;
    return [
      { name: `${name}.m`, dtype: "F32" as const, shape, data: bytesOf(m) },
      { name: `${name}.v`, dtype: "F32" as const, shape, data: bytesOf(v) },
    ];
  });
  return encodeSafetensors({ metadata, tensors });
}

/**
 * Writes a checkpoint directory atomically: both files go to "<dir>.tmp", are flushed, and the
 * directory is renamed to `dir` (a previous checkpoint there is moved to "<dir>.old" first and
 * removed after). Everything is validated and encoded before the first byte is written.
 */
export async function writeCheckpoint(dir: string, weights: LoraWeights, state: TrainingState): Promise<void> {
  let adapter: Uint8Array;
  let optimizer: Uint8Array;
  try {
    checkLoraWeights(weights);
    checkState(state, weights);
    adapter = encodeLoraGguf(weights);
    optimizer = encodeOptimizer(weights, state);
  } catch (error) {
    if (error instanceof CheckpointError) throw new CheckpointError(dir, error.message.replace(/^checkpoint: /, ""), { cause: error });
    throw new CheckpointError(dir, `cannot encode: ${(error as Error).message}`, { cause: error });
  }
  const tmp = `${dir}.tmp`;
  const old = `${dir}.old`;
  try {
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    await writeDurably(join(tmp, CHECKPOINT_ADAPTER_FILE), adapter);
    await writeDurably(join(tmp, CHECKPOINT_OPTIMIZER_FILE), optimizer);
    // rename() cannot replace a non-empty directory, so the old checkpoint steps aside first.
    const replacing = await exists(dir);
    if (replacing) {
      await rm(old, { recursive: true, force: true });
      await rename(dir, old);
    }
    await rename(tmp, dir);
    if (replacing) await rm(old, { recursive: true, force: true });
  } catch (error) {
    await rm(tmp, { recursive: true, force: true }).catch(() => {});
    throw new CheckpointError(dir, `cannot write: ${(error as Error).message}`, { cause: error });
  }
}

function integer(metadata: Readonly<Record<string, string>>, key: string, path: string, min: number): number {
  const text = metadata[key];
  const value = text === undefined || !/^-?\d+$/.test(text) ? Number.NaN : Number(text);
  if (!Number.isSafeInteger(value) || value < min) throw new CheckpointError(path, `__metadata__ "${key}" must be an integer ≥ ${min}, is ${JSON.stringify(text ?? null)}`);
  return value;
}

function jsonObject(metadata: Readonly<Record<string, string>>, key: string, path: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(metadata[key] ?? "");
  } catch (error) {
    throw new CheckpointError(path, `__metadata__ "${key}" is not JSON`, { cause: error });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new CheckpointError(path, `__metadata__ "${key}" is not a JSON object`);
  return value as Record<string, unknown>;
}

function text(metadata: Readonly<Record<string, string>>, key: string, path: string): string {
  const value = metadata[key];
  if (value === undefined) throw new CheckpointError(path, `__metadata__ has no "${key}"`);
  return value;
}

/** Reads a checkpoint directory written by writeCheckpoint; any missing, malformed or inconsistent part is a CheckpointError. */
export async function readCheckpoint(dir: string): Promise<{ weights: LoraWeights; state: TrainingState }> {
  const adapterPath = join(dir, CHECKPOINT_ADAPTER_FILE);
  const optimizerPath = join(dir, CHECKPOINT_OPTIMIZER_FILE);
  let weights: LoraWeights;
  try {
    weights = await readLoraGguf(adapterPath);
  } catch (error) {
    throw new CheckpointError(adapterPath, (error as Error).message, { cause: error });
  }
  let file;
  try {
    file = await openSafetensors(optimizerPath);
  } catch (error) {
    throw new CheckpointError(optimizerPath, (error as Error).message, { cause: error });
  }
  try {
    const metadata = file.header.metadata ?? {};
    if (metadata.format !== FORMAT) throw new CheckpointError(optimizerPath, `is not a gpuffi LoRA checkpoint (__metadata__ "format" is ${JSON.stringify(metadata.format ?? null)})`);
    if (metadata.version !== VERSION) throw new CheckpointError(optimizerPath, `checkpoint version ${metadata.version}, this gpuffi reads version ${VERSION}`);
    const params = parameters(weights);
    const byName = new Map(params.map((p) => [p.name, p]));
    const found = new Map<string, { m?: Float32Array; v?: Float32Array }>();
    for (const info of file.tensors) {
      const match = /^(.+)\.([mv])$/.exec(info.name);
      const param = match === null ? undefined : byName.get(match[1]!);
      if (match === null || param === undefined) throw new CheckpointError(optimizerPath, `tensor "${info.name}" is not the moment of a tensor of ${CHECKPOINT_ADAPTER_FILE}`);
      if (info.dtype !== "F32" || info.shape.length !== 2 || info.shape[0] !== param.shape[0] || info.shape[1] !== param.shape[1]) {
        throw new CheckpointError(optimizerPath, `tensor "${info.name}" is ${info.dtype} [${info.shape.join(", ")}], expected F32 [${param.shape.join(", ")}] (the adapter's shape)`);
      }
      const entry = found.get(param.name) ?? {};
      entry[match[2] as "m" | "v"] = new Float32Array((await file.readTensor(info.name)).slice().buffer);
      found.set(param.name, entry);
    }
    const moments = new Map<string, OptimizerMoments>();
    if (found.size > 0) {
      for (const { name } of params) {
        const entry = found.get(name);
        if (entry?.m === undefined || entry.v === undefined) throw new CheckpointError(optimizerPath, `no moment ${entry?.m === undefined ? "m" : "v"} for "${name}"`);
        moments.set(name, { m: entry.m, v: entry.v });
      }
    }
    const state: TrainingState = {
      step: integer(metadata, "step", optimizerPath, 0),
      epoch: integer(metadata, "epoch", optimizerPath, 0),
      index: integer(metadata, "index", optimizerPath, 0),
      seed: integer(metadata, "seed", optimizerPath, Number.MIN_SAFE_INTEGER),
      options: jsonObject(metadata, "options", optimizerPath),
      baseIdentity: text(metadata, "base_identity", optimizerPath),
      dataFingerprint: text(metadata, "data_fingerprint", optimizerPath),
      moments,
      ...(metadata.optimizer === undefined ? {} : { optimizer: metadata.optimizer }),
      ...(metadata.schedule === undefined ? {} : { schedule: jsonObject(metadata, "schedule", optimizerPath) }),
    };
    return { weights, state };
  } finally {
    await file.close();
  }
}

/** Bytes of each tensor's data that baseIdentity hashes. */
const SAMPLE_BYTES = 4096;

/**
 * Identifies a base model file without reading all of its weights: its size, and the SHA-256 of
 * its GGUF header (metadata and tensor table: names, shapes, types, offsets) followed by the first
 * 4 KiB of every tensor's data. The samples tell apart models whose headers are identical (two
 * fine-tunes of one architecture); another quantization or a re-export changes the header;
 * copying or renaming the file changes nothing.
 */
export async function baseIdentity(path: string): Promise<string> {
  let header: { dataOffset: number; ranges: [number, number][] };
  let size: number;
  {
    await using file = await openGguf(path);
    const { dataOffset, tensors } = file.header;
    header = { dataOffset, ranges: tensors.map((t) => [dataOffset + t.offset, Math.min(t.byteLength, SAMPLE_BYTES)]) };
    size = file.size;
  }
  const hash = createHash("sha256");
  const handle = await open(path, "r");
  try {
    for (const [at, length] of [[0, header.dataOffset] as [number, number], ...header.ranges]) {
      const bytes = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await handle.read(bytes, done, length - done, at + done);
        if (bytesRead === 0) throw new CheckpointError(path, "the file shrank while it was being read");
        done += bytesRead;
      }
      hash.update(bytes);
    }
    return `gguf:${size}:sha256:${hash.digest("hex")}`;
  } finally {
    await handle.close();
  }
}

const shown = (value: unknown) => (value === undefined ? "unset" : canonicalJson(value));

/**
 * Refuses to resume from `state` unless it was made with the same base model, the same data and
 * the same values of `resumeKeys` among the options (compared as canonical JSON; an option unset
 * on both sides agrees). The ResumeMismatchError names every difference at once.
 */
export function checkResumable(
  state: TrainingState,
  expected: { baseIdentity: string; options: Record<string, unknown>; dataFingerprint: string },
  resumeKeys: readonly string[],
): void {
  const differences: string[] = [];
  if (state.baseIdentity !== expected.baseIdentity) differences.push(`base model: the checkpoint was made with ${state.baseIdentity}, this run has ${expected.baseIdentity}`);
  if (state.dataFingerprint !== expected.dataFingerprint) differences.push(`data: the checkpoint was made with ${state.dataFingerprint}, this run has ${expected.dataFingerprint}`);
  for (const key of resumeKeys) {
    const [before, now] = [state.options[key], expected.options[key]];
    if (shown(before) !== shown(now)) differences.push(`option "${key}": checkpoint ${shown(before)}, this run ${shown(now)}`);
  }
  if (differences.length > 0) throw new ResumeMismatchError(differences);
}
