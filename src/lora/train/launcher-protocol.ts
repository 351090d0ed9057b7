// What the data-parallel launcher (launcher.ts) and its rank processes (rank-process.ts) say to
// each other: one JSON object per line over a TCP connection on 127.0.0.1, each rank's own. The
// launcher sends the job and, when asked to stop, "stop"; a rank sends hello, ready, one report
// per step, and done or the error that ends it. A Dataset given in memory travels in the job.
import { Buffer } from "node:buffer";
import type { Socket } from "node:net";
import { Dataset } from "./dataset.ts";
import type { TrainerOptions, StepReport } from "./trainer.ts";

/** A data set for a rank: a file each rank reads itself, or sequences made in the launcher. */
export type DataSource =
  | { readonly path: string }
  | { readonly ctx: number; readonly sequences: readonly { readonly tokens: string; readonly counted: string; readonly source: string }[] };

/** The trainer's options that travel as they are (everything but data, the library and the device). */
export type PlainTrainerOptions = Omit<TrainerOptions, "data" | "eval" | "llama" | "reducer" | "device">;

export interface RankJob {
  readonly rank: number;
  readonly ranks: number;
  /** cpu: every rank on the CPU, TcpGradientReducer; cuda: rank r on cuda:r, NcclGradientReducer. */
  readonly device: "cpu" | "cuda";
  /** The rendezvous (NCCL's bootstrap, or the TCP reducer's hub address). */
  readonly host: string;
  readonly port: number;
  readonly timeoutMs: number;
  readonly trainer: PlainTrainerOptions;
  readonly data: DataSource;
  readonly eval?: DataSource;
  /** Rank 0 writes the adapter here at the end. */
  readonly out?: string;
  /** Rank 0 writes checkpointDir/step-N every this many steps. */
  readonly checkpointEvery?: number;
  readonly checkpointDir?: string;
}

export interface ReportedError {
  readonly name: string;
  readonly code?: string;
  readonly message: string;
}

export interface RankMemory {
  readonly base: number;
  readonly lora: number;
  readonly compute: number;
}

export type RankMessage =
  | { readonly type: "hello"; readonly rank: number; readonly token: string }
  | { readonly type: "ready"; readonly step: number; readonly totalSteps: number }
  | { readonly type: "step"; readonly report: StepReport }
  | { readonly type: "done"; readonly step: number; readonly totalSteps: number; readonly evalLoss?: number; readonly memory: RankMemory }
  | { readonly type: "error"; readonly error: ReportedError };

export type LauncherMessage = { readonly type: "job"; readonly job: RankJob } | { readonly type: "stop" };

export function encodeDataset(data: Dataset): DataSource {
  const base64 = (view: ArrayBufferView) => Buffer.from(view.buffer, view.byteOffset, view.byteLength).toString("base64");
  return { ctx: data.ctx, sequences: data.sequences.map((s) => ({ tokens: base64(s.tokens), counted: base64(s.counted), source: s.source })) };
}

/** The file's path, or the Dataset the launcher was given (checked again, as fromSequences does). */
export function decodeDataSource(source: DataSource): string | Dataset {
  if ("path" in source) return source.path;
  return Dataset.fromSequences(
    source.sequences.map((s) => {
      const tokens = Buffer.from(s.tokens, "base64");
      const counted = Buffer.from(s.counted, "base64");
      return {
        tokens: new Int32Array(tokens.buffer.slice(tokens.byteOffset, tokens.byteOffset + tokens.byteLength)),
        counted: new Uint8Array(counted.buffer.slice(counted.byteOffset, counted.byteOffset + counted.byteLength)),
        source: s.source,
      };
    }),
    source.ctx,
  );
}

/** The error as a rank reports it: its class name, gpuffi's code when it has one, and its message. */
export function reportedError(error: unknown): ReportedError {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return { name: error.name, ...(typeof code === "string" ? { code } : {}), message: error.message };
  }
  return { name: "Error", message: String(error) };
}

/** Calls `onMessage` for every line the socket receives, parsed as JSON; a line that is not JSON ends it with `onGarbage`. */
export function readMessages<T>(socket: Socket, onMessage: (message: T) => void, onGarbage: (line: string) => void): void {
  let pending = "";
  socket.setEncoding("utf8");
  socket.on("data", (chunk: string) => {
    pending += chunk;
    let newline: number;
    while ((newline = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      if (line.trim() === "") continue;
      let message: T;
      try {
        message = JSON.parse(line) as T;
      } catch {
        return onGarbage(line);
      }
      onMessage(message);
    }
  });
}

export function writeMessage(socket: Socket, message: RankMessage | LauncherMessage): void {
  socket.write(`${JSON.stringify(message)}\n`);
}
