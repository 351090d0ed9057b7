// Runs in a Worker: opens its own CudaContext on device 0 (one Worker per GPU is the documented
// multi-GPU pattern), round-trips random bytes and reports back. Without a GPU it says why.
import { parentPort } from "node:worker_threads";
import { CudaContext } from "../../src/cuda/index.ts";
import { probeGpu } from "./gpu-probe.ts";
import { firstDifference, randomBytes } from "./random.ts";

export interface WorkerReport {
  readonly ran: boolean;
  readonly reason?: string;
  readonly uuid?: string;
  readonly mismatch?: number;
  readonly error?: string;
}

// Bun and Deno Workers post through the global scope; Node's worker_threads through parentPort.
const g = globalThis as { postMessage?: (message: unknown) => void };
const post = typeof g.postMessage === "function" ? (m: WorkerReport) => g.postMessage!(m) : (m: WorkerReport) => parentPort!.postMessage(m);

function run(): WorkerReport {
  const gpu = probeGpu();
  if (!gpu.available) return { ran: false, reason: gpu.reason ?? "no GPU" };
  using context = CudaContext.create({ device: 0 });
  const data = randomBytes(8 * 2 ** 20 + 5);
  using buffer = context.alloc(data.byteLength);
  buffer.write(data);
  return { ran: true, uuid: context.info().uuid, mismatch: firstDifference(buffer.read(), data) };
}

try {
  post(run());
} catch (error) {
  post({ ran: false, error: error instanceof Error ? (error.stack ?? error.message) : String(error) });
}
