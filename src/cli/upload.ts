// `gpuffi upload FILE`: streams every tensor of a GGUF or safetensors file into GPU memory and
// says how fast that went (the buffers are freed at the end): a model file's load time, measured
// with any upload strategy and any ring shape.
import { CudaContext, fileTensors, uploadStrategies, type UploadStrategy, uploadTensors } from "../cuda/index.ts";
import { type CliIO, type Command, UsageError, integerOption, parseCommandArgs, toJson, withProgressBar } from "./command.ts";

const synopsis = "upload FILE [--device N] [--chunk MiB] [--slots N] [--reads N] [--strategy staged|mapped|hybrid] [--window N] [--json]";
const usage = `usage: gpuffi ${synopsis}

Streams every tensor of a GGUF or safetensors file into device memory on GPU N (default 0) and
prints the bytes, the seconds and the rate (GB/s, 10^9 bytes per second); the buffers are freed
at the end. docs/lora-tools.md explains the strategies.
  --chunk MiB     bytes per staging buffer or registered window (default 8 staged and
                  hybrid, 64 mapped)
  --slots N       chunks in flight (default 32 staged and hybrid, 4 mapped)
  --reads N       staged and hybrid: file reads in flight at most (default: the slots, at
                  most the machine's cores)
  --strategy S    staged (the default where file reads run in parallel): read into pinned
                  staging buffers; mapped: map the file and register its pages with
                  cudaHostRegister; hybrid: both at once, sharing the chunks
  --window N      hybrid: chunks per registered window of the mapped side (default 64 MiB)
  --json          one JSON object instead of the text line`;

export const uploadCommand: Command = {
  name: "upload",
  synopsis,
  summary: "stream every tensor of a GGUF or safetensors file to a GPU and report the rate",
  usage,
  async run(argv: string[], io: CliIO): Promise<number> {
    const { positionals, values } = parseCommandArgs(argv, { device: "string", chunk: "string", slots: "string", reads: "string", strategy: "string", window: "string", json: "boolean" }, ["FILE"]);
    const path = positionals[0]!;
    const device = integerOption(values, "device", 0, 0);
    const chunkBytes = values.chunk === undefined ? undefined : integerOption(values, "chunk", 0, 1) * 2 ** 20;
    const slots = values.slots === undefined ? undefined : integerOption(values, "slots", 0, 1);
    const reads = values.reads === undefined ? undefined : integerOption(values, "reads", 0, 1);
    const windowChunks = values.window === undefined ? undefined : integerOption(values, "window", 0, 1);
    const strategy = values.strategy as UploadStrategy | undefined;
    if (strategy !== undefined && !uploadStrategies.includes(strategy)) throw new UsageError(`--strategy takes one of ${uploadStrategies.join(", ")}, got "${String(values.strategy)}"`);
    if (windowChunks !== undefined && strategy !== "hybrid") throw new UsageError("--window is for --strategy hybrid");
    if (reads !== undefined && strategy === "mapped") throw new UsageError("--reads is for --strategy staged or hybrid: mapped reads nothing");
    // The file first: a wrong file is reported as such, also on a machine without a GPU.
    const tensors = (await fileTensors(path)).length;
    using context = CudaContext.create({ device });
    const { buffers, stats } = await withProgressBar("uploading", (onProgress) => uploadTensors(context, path, { strategy, chunkBytes, slots, reads, windowChunks, onProgress }));
    for (const buffer of buffers.values()) buffer.dispose();
    const gbps = stats.bytes === 0 ? 0 : stats.bytes / stats.seconds / 1e9;
    io.out(values.json
      ? toJson({ file: path, device, strategy: stats.strategy, chunkBytes: stats.chunkBytes, slots: stats.slots, reads: stats.reads, windowChunks: stats.windowChunks, mappedBytes: stats.mappedBytes, tensors, bytes: stats.bytes, chunks: stats.chunks, seconds: stats.seconds, gbps })
      : `uploaded ${tensors} tensors, ${(stats.bytes / 1e9).toFixed(3)} GB in ${stats.seconds.toFixed(3)} s: ${gbps.toFixed(2)} GB/s ` +
        `(GPU ${device}, ${stats.strategy}, ${stats.chunkBytes / 2 ** 20} MiB × ${stats.slots}${stats.reads === undefined ? "" : `, ${stats.reads} reads at once`}` +
        `${stats.windowChunks === undefined ? "" : ` + windows of ${stats.windowChunks} chunks, ${((stats.mappedBytes ?? 0) / 1e9).toFixed(3)} GB mapped`})`);
    return 0;
  },
};
