// `gpuffi top [--interval S] [--json] [--once]`: every GPU's live state through NVML, redrawn
// every interval until interrupted (Ctrl-C exits 0). On a terminal the table replaces the last
// one; piped, each refresh follows the last. --json prints one snapshot object per line.
import process from "node:process";
import { type Nvml, formatGpuSnapshot, watchGpus } from "../cuda/index.ts";
import { type CliIO, type Command, UsageError, parseCommandArgs } from "./command.ts";

export interface TopOptions {
  /** Seconds between refreshes. */
  readonly interval: number;
  readonly json: boolean;
  /** One refresh, then exit. */
  readonly once: boolean;
}

export interface TopDependencies {
  /** The NVML session to read (default: one opened and disposed by the command). */
  readonly nvml?: Nvml;
  /** CUDA's bus ids by ordinal (default: from libcudart when it loads). */
  readonly cudaBusIds?: readonly string[];
  /** Ends the loop (the command itself ends it on SIGINT). */
  readonly signal?: AbortSignal;
  /** Clear the screen before each table (default: when stdout is a terminal). */
  readonly redraw?: boolean;
}

export async function runTop(options: TopOptions, io: CliIO, deps: TopDependencies = {}): Promise<number> {
  const redraw = deps.redraw ?? (!options.json && process.stdout.isTTY === true);
  let first = true;
  for await (const snapshot of watchGpus({ interval: options.interval, signal: deps.signal, nvml: deps.nvml, cudaBusIds: deps.cudaBusIds })) {
    if (options.json) io.out(JSON.stringify(snapshot));
    else io.out(`${redraw ? "\x1b[H\x1b[2J" : first ? "" : "\n"}${formatGpuSnapshot(snapshot)}`);
    first = false;
    if (options.once) break;
  }
  return 0;
}

export function parseTopArgs(argv: string[]): TopOptions {
  const { values } = parseCommandArgs(argv, { interval: "string", json: "boolean", once: "boolean" }, []);
  const raw = values.interval;
  const interval = raw === undefined ? 1 : Number(raw);
  if (typeof raw === "string" && (raw.trim() === "" || !Number.isFinite(interval) || interval <= 0)) {
    throw new UsageError(`--interval needs a number of seconds > 0, got "${raw}"`);
  }
  return { interval, json: values.json === true, once: values.once === true };
}

const usage = `usage: gpuffi top [--interval S] [--json] [--once]

Every GPU's memory, utilization, temperature, power, clocks, PCIe link, ECC and compute mode,
and the processes on it, from NVML (libnvidia-ml.so.1, shipped with the driver; GPUFFI_NVML
overrides), refreshed every interval until Ctrl-C. GPUs are listed by NVML index with the CUDA
ordinal this process would use for them.
  --interval S   seconds between refreshes (default 1; fractions allowed)
  --json         one JSON object per refresh, one per line
  --once         print one refresh and exit`;

export const topCommand: Command = {
  name: "top",
  synopsis: "top [--interval S] [--json] [--once]",
  summary: "live view of every GPU through NVML: memory, utilization, power, clocks, processes",
  usage,
  async run(argv: string[], io: CliIO): Promise<number> {
    const options = parseTopArgs(argv);
    const stop = new AbortController();
    const interrupt = () => stop.abort();
    process.once("SIGINT", interrupt);
    try {
      return await runTop(options, io, { signal: stop.signal });
    } finally {
      process.off("SIGINT", interrupt);
    }
  },
};
