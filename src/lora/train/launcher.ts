// Data-parallel training in several processes: trainDataParallel starts one rank process per GPU
// (or per CPU rank), on the runtime running it, and runs the job in them (rank-process.ts): every
// rank takes its slice of each global batch, the LoRA gradients and the loss are summed across
// the ranks before every optimizer step (NCCL between GPUs, TCP between CPU processes), so the
// run trains what one process trains on the whole batch. Rank 0 writes the checkpoints and the
// adapter; every rank reports each step, and the launcher hands out one report per step. When a
// rank dies, the launcher ends the others and says which rank failed first and how.
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { type Server, type Socket, createServer } from "node:net";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import process from "node:process";
import { scriptCommand } from "../../ffi/index.ts";
import { openGguf } from "../../formats/index.ts";
import { Ggml } from "../../ggml/index.ts";
import { Llama } from "../../llama/index.ts";
import { llamaShape } from "./architecture.ts";
import { Dataset } from "./dataset.ts";
import { type RankExit, RankFailedError, TrainingError } from "./errors.ts";
import { type DataSource, type LauncherMessage, type PlainTrainerOptions, type RankJob, type RankMemory, type RankMessage, type ReportedError, encodeDataset, readMessages, writeMessage } from "./launcher-protocol.ts";
import { resolveOptions } from "./options.ts";
import type { StepReport, TrainerOptions } from "./trainer.ts";

export interface DataParallelOptions extends Omit<TrainerOptions, "device" | "reducer"> {
  /** One process per GPU: rank r trains on cuda:r, gradients are summed over NCCL. */
  readonly gpus?: number;
  /** Processes on `device` (default "cpu", gradients summed over TCP); `gpus: N` is `ranks: N, device: "cuda"`. */
  readonly ranks?: number;
  readonly device?: "cpu" | "cuda";
  /** Rank 0 writes the adapter here when the run ends (also when it was stopped). */
  readonly out?: string;
  /** Rank 0 writes `checkpointDir/step-N` every this many steps (needs checkpointDir). */
  readonly checkpointEvery?: number;
  readonly checkpointDir?: string;
  /** Aborting stops every rank after the same step (the ranks vote with their gradients). */
  readonly signal?: AbortSignal;
  /** The rendezvous: rank 0's address (default 127.0.0.1) and port (default: a free one). */
  readonly host?: string;
  readonly port?: number;
  /** Milliseconds the ranks wait for each other at the rendezvous (default 60 000). */
  readonly timeoutMs?: number;
  /** Each line a rank prints (default: to stderr as "[rank R] line"). */
  readonly onOutput?: (rank: number, line: string) => void;
}

/** What one rank measured in a step. */
export interface RankStepReport {
  readonly rank: number;
  readonly rankTokens: number;
  readonly rankTokensPerSecond: number;
  readonly allReduceMs: number;
  readonly stepMs: number;
}

/** Rank 0's report of a step (loss, lr, the global batch's tokens) and every rank's timings. */
export interface DataParallelStepReport extends StepReport {
  readonly ranks: readonly RankStepReport[];
}

export interface DataParallelResult {
  /** Optimizer steps taken, counting those of a resumed checkpoint. */
  readonly step: number;
  readonly totalSteps: number;
  /** The run was stopped before totalSteps. */
  readonly stopped: boolean;
  /** The evaluation data's loss after training, when `eval` was given. */
  readonly evalLoss?: number;
  /** Rank 0's bytes on its device (base, LoRA state, compute buffers). */
  readonly memory: RankMemory;
}

const outputLinesKept = 20;
/** A rank the launcher asked to end (SIGTERM) is killed after this long. */
const killAfterMs = 5_000;

/** The rank process's module: beside this one in the sources, under dist/lora/ once built. */
function rankScript(): string {
  if (!import.meta.url.startsWith("file:")) throw new TrainingError("ERR_TRAIN_LAUNCH", `the rank processes run gpuffi's rank-process module from a file, but this gpuffi was loaded from ${import.meta.url}: install it locally`);
  for (const candidate of ["./rank-process.ts", "./rank-process.js", "./lora/rank-process.js", "../lora/rank-process.js"]) {
    const path = fileURLToPath(new URL(candidate, import.meta.url));
    if (existsSync(path)) return path;
  }
  throw new TrainingError("ERR_TRAIN_LAUNCH", `cannot find gpuffi's rank-process module next to ${fileURLToPath(import.meta.url)}`);
}

function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function positiveInteger(name: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) throw new TrainingError("ERR_TRAIN_ARGUMENT", `${name} must be a whole number ≥ 1, got ${String(value)}`);
  return value;
}

/** The number of ranks and their device kind, from `gpus` or `ranks` + `device`. */
function rankPlan(options: DataParallelOptions): { ranks: number; device: "cpu" | "cuda" } {
  if ((options.gpus === undefined) === (options.ranks === undefined)) throw new TrainingError("ERR_TRAIN_ARGUMENT", "give either gpus (one process per GPU) or ranks (with device, default cpu)");
  if (options.gpus !== undefined) {
    if (options.device !== undefined && options.device !== "cuda") throw new TrainingError("ERR_TRAIN_ARGUMENT", `gpus trains on CUDA devices, but device is ${options.device}`);
    return { ranks: positiveInteger("gpus", options.gpus), device: "cuda" };
  }
  const device = options.device ?? "cpu";
  if (device !== "cpu" && device !== "cuda") throw new TrainingError("ERR_TRAIN_ARGUMENT", `device must be cpu or cuda (rank r runs on cuda:r), got ${String(device)}`);
  return { ranks: positiveInteger("ranks", options.ranks), device };
}

/** CUDA devices ggml offers in this process (cuda:0 …), which the ranks will see too. */
function cudaDevices(llama: Llama): number {
  return Ggml.open(llama.dir).devices().filter((d) => d.name.startsWith("cuda:")).length;
}

/**
 * Checks everything that can be checked before a process starts: the rank count against the
 * devices, every training option, and the global batch against ranks × micro-batches. Equal
 * slices only: an uneven split would give ranks graphs of different shapes and a sum weighted
 * by slice, so a batch that does not divide is refused rather than padded or dropped.
 */
async function checkPlan(options: DataParallelOptions, ranks: number, device: "cpu" | "cuda"): Promise<void> {
  if (device === "cuda") {
    const available = cudaDevices(options.llama ?? Llama.shared());
    if (ranks > available) {
      throw new TrainingError("ERR_TRAIN_DEVICES", `${ranks} GPU rank${ranks === 1 ? "" : "s"} need${ranks === 1 ? "s" : ""} ${ranks} CUDA devices; ggml sees ${available} here${available === 0 ? " (a CPU-only build of llama.cpp, or no GPU: set GPUFFI_LLAMA_DIR to a CUDA build)" : ""}`);
    }
  }
  const file = await openGguf(options.base);
  let context: number;
  try {
    context = llamaShape(file).contextLength;
  } finally {
    await file.close();
  }
  const resolved = resolveOptions(options, context);
  if (resolved.batch % (ranks * resolved.gradAccum) !== 0) {
    throw new TrainingError("ERR_TRAIN_ARGUMENT", `the global batch of ${resolved.batch} does not split evenly over ${ranks} rank${ranks === 1 ? "" : "s"} × ${resolved.gradAccum} micro-batch${resolved.gradAccum === 1 ? "" : "es"}: make batch a multiple of ${ranks * resolved.gradAccum}`);
  }
  if (options.checkpointEvery !== undefined) {
    positiveInteger("checkpointEvery", options.checkpointEvery);
    if (options.checkpointDir === undefined) throw new TrainingError("ERR_TRAIN_ARGUMENT", "checkpointEvery needs checkpointDir");
  }
}

function dataSource(data: string | Dataset): DataSource {
  return data instanceof Dataset ? encodeDataset(data) : { path: data };
}

/** A queue that one consumer iterates: values as they come, then the end or an error. */
class ReportQueue<T> implements AsyncIterator<T> {
  readonly #values: T[] = [];
  readonly #waiting: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void }[] = [];
  #end: { error?: unknown } | undefined;

  constructor(private readonly onReturn: () => void) {}

  push(value: T): void {
    const waiter = this.#waiting.shift();
    if (waiter) waiter.resolve({ value, done: false });
    else this.#values.push(value);
  }

  finish(error?: unknown): void {
    if (this.#end) return;
    this.#end = error === undefined ? {} : { error };
    for (const waiter of this.#waiting.splice(0)) {
      if (error === undefined) waiter.resolve({ value: undefined, done: true });
      else waiter.reject(error);
    }
  }

  next(): Promise<IteratorResult<T>> {
    if (this.#values.length > 0) return Promise.resolve({ value: this.#values.shift()!, done: false });
    if (this.#end) return this.#end.error === undefined ? Promise.resolve({ value: undefined, done: true }) : Promise.reject(this.#end.error);
    return new Promise((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }

  return(): Promise<IteratorResult<T>> {
    this.onReturn();
    return Promise.resolve({ value: undefined, done: true });
  }
}

interface RankState {
  readonly rank: number;
  child?: ChildProcess;
  socket?: Socket;
  socketClosed: boolean;
  ready: boolean;
  done?: Extract<RankMessage, { type: "done" }>;
  error?: ReportedError;
  exit?: { code: number | null; signal: string | null };
  /** The process exited and its connection (if any) closed: nothing more will come from it. */
  finished: boolean;
  readonly output: string[];
  endedByLauncher: boolean;
}

/** A failure that only follows another rank's: a lost peer, or a rank the launcher ended itself. */
function isConsequence(state: RankState): boolean {
  if (state.endedByLauncher && state.exit?.signal !== null && state.error === undefined) return true;
  return state.error?.code === "ERR_TRAIN_PEER_LOST" || state.error?.name === "NcclError";
}

function describeExit(state: RankState): RankExit {
  return {
    rank: state.rank,
    exitCode: state.exit?.code ?? null,
    signal: state.exit?.signal ?? null,
    ...(state.error === undefined ? {} : { error: state.error }),
    output: [...state.output],
    endedByLauncher: state.endedByLauncher,
  };
}

function failureMessage(exit: RankExit, ranks: number): string {
  const who = `rank ${exit.rank} of ${ranks}`;
  let what: string;
  if (exit.error !== undefined) what = `${who} failed: ${exit.error.name}: ${exit.error.message}`;
  else if (exit.signal !== null) what = `${who} was killed by ${exit.signal}`;
  else if (exit.exitCode === 0) what = `${who} exited before the run finished`;
  else what = `${who} exited with code ${exit.exitCode}`;
  const last = exit.output.slice(-3).join(" | ");
  if (exit.error === undefined && last !== "") what += ` (its last output: ${last})`;
  return ranks > 1 ? `${what}; the launcher ended the other rank${ranks === 2 ? "" : "s"}` : what;
}

/** A data-parallel run in progress: iterate it for one report per step; `result` settles when every rank has exited. */
export class DataParallelRun implements AsyncIterable<DataParallelStepReport> {
  /** Resolves when every rank finished; rejects with RankFailedError when one failed. */
  readonly result: Promise<DataParallelResult>;
  readonly #reports: ReportQueue<DataParallelStepReport>;
  readonly #states: RankState[];
  readonly #steps = new Map<number, StepReport[]>();
  #settle!: { resolve: (r: DataParallelResult) => void; reject: (e: unknown) => void };
  #started!: { resolve: () => void; reject: (e: unknown) => void };
  readonly #startedPromise: Promise<void>;
  /** Ranks in the order they finished. */
  readonly #finished: RankState[] = [];
  #failed = false;
  #iterated = false;
  #server: Server | undefined;
  #killTimer: ReturnType<typeof setTimeout> | undefined;
  #startStep = 0;
  #totalSteps = 0;

  /** @internal Use trainDataParallel. */
  constructor(
    readonly ranks: number,
    readonly device: "cpu" | "cuda",
    private readonly onOutput: (rank: number, line: string) => void,
  ) {
    this.#states = Array.from({ length: ranks }, (_, rank) => ({ rank, socketClosed: false, ready: false, finished: false, output: [], endedByLauncher: false }));
    this.#reports = new ReportQueue(() => this.stop());
    this.result = new Promise((resolve, reject) => (this.#settle = { resolve, reject }));
    this.result.catch(() => {});
    this.#startedPromise = new Promise((resolve, reject) => (this.#started = { resolve, reject }));
    this.#startedPromise.catch(() => {});
  }

  /** Steps taken before this run: a resumed checkpoint's. */
  get startStep(): number {
    return this.#startStep;
  }

  /** The steps the run takes in all, counting those before a resume. */
  get totalSteps(): number {
    return this.#totalSteps;
  }

  /** The rank processes: their ranks and process ids. */
  get processes(): readonly { rank: number; pid: number | undefined }[] {
    return this.#states.map((s) => ({ rank: s.rank, pid: s.child?.pid }));
  }

  /** Asks every rank to stop after the next step they all agree on (what Ctrl-C does). */
  stop(): void {
    for (const state of this.#states) if (state.socket && !state.socket.destroyed) writeMessage(state.socket, { type: "stop" });
  }

  [Symbol.asyncIterator](): AsyncIterator<DataParallelStepReport> {
    if (this.#iterated) throw new TrainingError("ERR_TRAIN_ARGUMENT", "a DataParallelRun's reports can be iterated once");
    this.#iterated = true;
    return this.#reports;
  }

  /** @internal Starts the ranks; resolves once every rank has connected and built its trainer. */
  async start(job: Omit<RankJob, "rank" | "ranks">, env: Record<string, string | undefined>): Promise<void> {
    const token = randomBytes(16).toString("hex");
    const server = createServer((socket) => this.#accept(socket, job, token));
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", resolve);
    });
    const controlPort = (server.address() as { port: number }).port;
    const { command, args } = scriptCommand(rankScript());
    for (const state of this.#states) {
      const child = spawn(command, [...args, String(controlPort), String(state.rank), token], { env, stdio: ["ignore", "pipe", "pipe"] });
      state.child = child;
      for (const stream of [child.stdout!, child.stderr!]) this.#collectOutput(state, stream);
      child.on("error", (error) => {
        state.error ??= { name: error.name, message: `could not start ${command}: ${error.message}` };
        this.#exited(state, null, null);
      });
      child.on("exit", (code, signal) => this.#exited(state, code, signal));
    }
    await this.#startedPromise;
  }

  #collectOutput(state: RankState, stream: NodeJS.ReadableStream): void {
    let pending = "";
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => {
      pending += chunk;
      const lines = pending.split("\n");
      pending = lines.pop()!;
      for (const line of lines) this.#line(state, line);
    });
    stream.on("end", () => {
      if (pending !== "") this.#line(state, pending);
      pending = "";
    });
  }

  #line(state: RankState, line: string): void {
    state.output.push(line);
    if (state.output.length > outputLinesKept) state.output.shift();
    this.onOutput(state.rank, line);
  }

  #accept(socket: Socket, job: Omit<RankJob, "rank" | "ranks">, token: string): void {
    socket.on("error", () => {});
    let state: RankState | undefined;
    readMessages<RankMessage>(socket, (message) => {
      if (state === undefined) {
        const claimed = message.type === "hello" ? this.#states[message.rank] : undefined;
        if (message.type !== "hello" || message.token !== token || claimed === undefined || claimed.socket !== undefined) return void socket.destroy();
        state = claimed;
        state.socket = socket;
        socket.on("close", () => {
          state!.socketClosed = true;
          this.#maybeFinished(state!);
        });
        writeMessage(socket, { type: "job", job: { ...job, rank: state.rank, ranks: this.ranks } } satisfies LauncherMessage);
        return;
      }
      this.#message(state, message);
    }, () => socket.destroy());
  }

  #message(state: RankState, message: RankMessage): void {
    switch (message.type) {
      case "ready":
        state.ready = true;
        if (state.rank === 0) {
          this.#startStep = message.step;
          this.#totalSteps = message.totalSteps;
        }
        if (this.#states.every((s) => s.ready)) this.#started.resolve();
        return;
      case "step": {
        const { step } = message.report;
        let reports = this.#steps.get(step);
        if (reports === undefined) this.#steps.set(step, (reports = []));
        reports[state.rank] = message.report;
        if (reports.filter(Boolean).length < this.ranks) return;
        this.#steps.delete(step);
        const ranks = reports.map((r, rank) => ({ rank, rankTokens: r.rankTokens, rankTokensPerSecond: r.rankTokensPerSecond, allReduceMs: r.allReduceMs, stepMs: r.stepMs }));
        this.#reports.push({ ...reports[0]!, ranks });
        return;
      }
      case "done":
        state.done = message;
        return;
      case "error":
        state.error = message.error;
        return;
    }
  }

  #exited(state: RankState, code: number | null, signal: string | null): void {
    if (state.exit !== undefined) return;
    state.exit = { code, signal };
    // The rank's last messages may still be on their way: wait for its connection to close too.
    if (state.socket !== undefined && !state.socketClosed) setTimeout(() => state.socket?.destroy(), 1_000);
    this.#maybeFinished(state);
  }

  #maybeFinished(state: RankState): void {
    if (state.finished || state.exit === undefined || (state.socket !== undefined && !state.socketClosed)) return;
    state.finished = true;
    this.#finished.push(state);
    const failed = state.exit.code !== 0 || state.exit.signal !== null || state.done === undefined;
    if (failed && !this.#failed) this.#fail();
    if (this.#states.every((s) => s.finished)) this.#end();
  }

  /** Ends every rank still running: SIGTERM now, SIGKILL after killAfterMs. */
  #fail(): void {
    this.#failed = true;
    for (const state of this.#states) {
      if (state.exit === undefined && state.child?.pid !== undefined) {
        state.endedByLauncher = true;
        state.child.kill("SIGTERM");
      }
    }
    this.#killTimer = setTimeout(() => {
      for (const state of this.#states) if (state.exit === undefined) state.child?.kill("SIGKILL");
    }, killAfterMs);
  }

  #end(): void {
    clearTimeout(this.#killTimer);
    this.#server?.close();
    if (!this.#failed) {
      const done = this.#states[0]!.done!;
      const { step, totalSteps, evalLoss, memory } = done;
      this.#reports.finish();
      this.#started.resolve();
      this.#settle.resolve({ step, totalSteps, stopped: step < totalSteps, ...(evalLoss === undefined ? {} : { evalLoss }), memory });
      return;
    }
    // The order in which the ranks finished: the first that failed on its own is the cause.
    const failures = this.#finished.filter((s) => s.exit!.code !== 0 || s.exit!.signal !== null || s.done === undefined);
    const cause = failures.find((s) => !isConsequence(s)) ?? failures[0]!;
    const exit = describeExit(cause);
    const error = new RankFailedError(cause.rank, this.ranks, exit, this.#states.map((s) => (s.child === undefined ? undefined : describeExit(s))), failureMessage(exit, this.ranks));
    this.#reports.finish(error);
    this.#started.reject(error);
    this.#settle.reject(error);
  }

}

/**
 * Trains a LoRA adapter data-parallel in `gpus` processes (one per GPU, NCCL) or `ranks` CPU
 * processes (TCP), started on this runtime. Resolves once every rank is connected and has built
 * its trainer, with the run to iterate; rejects with a TrainingError for options that cannot
 * work (checked before any process starts) and a RankFailedError when a rank fails to start.
 * Every process started gets NCCL_NVLS_ENABLE=0.
 */
export async function trainDataParallel(options: DataParallelOptions): Promise<DataParallelRun> {
  const { ranks, device } = rankPlan(options);
  await checkPlan(options, ranks, device);
  const host = options.host ?? "127.0.0.1";
  const port = options.port ?? await freePort(host);
  const timeoutMs = options.timeoutMs ?? 60_000;
  const {
    data, eval: evalData, llama, gpus: _gpus, ranks: _ranks, device: _device, out, checkpointEvery, checkpointDir, signal, host: _host, port: _port, timeoutMs: _timeout, onOutput, ...rest
  } = options;
  const trainer: PlainTrainerOptions = {
    ...rest,
    // CPU ranks share the cores unless told otherwise; GPU ranks leave the CPU backend's default.
    ...(device === "cpu" && rest.threads === undefined ? { threads: Math.max(1, Math.floor(availableParallelism() / ranks)) } : {}),
  };
  const job: Omit<RankJob, "rank" | "ranks"> = {
    device,
    host,
    port,
    timeoutMs,
    trainer,
    data: dataSource(data),
    ...(evalData === undefined ? {} : { eval: dataSource(evalData) }),
    ...(out === undefined ? {} : { out }),
    ...(checkpointEvery === undefined ? {} : { checkpointEvery, checkpointDir: checkpointDir! }),
  };
  const env: Record<string, string | undefined> = { ...process.env, NCCL_NVLS_ENABLE: "0" };
  if (llama?.dir !== undefined) env.GPUFFI_LLAMA_DIR = llama.dir;
  const run = new DataParallelRun(ranks, device, onOutput ?? ((rank, line) => process.stderr.write(`[rank ${rank}] ${line}\n`)));
  if (signal !== undefined) {
    const stop = () => run.stop();
    signal.addEventListener("abort", stop, { once: true });
    run.result.finally(() => signal.removeEventListener("abort", stop)).catch(() => {});
  }
  await run.start(job, env);
  if (signal?.aborted) run.stop();
  return run;
}
