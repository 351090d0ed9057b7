// Starts test/cuda/gpu-worker.ts in a Worker on whichever runtime runs the tests and waits for
// its one report: Bun and Deno have the web Worker for .ts files; Node uses worker_threads with
// tsx registered inside the worker.
import { Worker as NodeWorker } from "node:worker_threads";
import type { WorkerReport } from "./gpu-worker.ts";

export function runGpuWorker(): Promise<WorkerReport> {
  const url = new URL("./gpu-worker.ts", import.meta.url);
  const WebWorker = (globalThis as { Worker?: new (url: URL, options: { type: "module" }) => { onmessage: ((e: { data: WorkerReport }) => void) | null; onerror: ((e: unknown) => void) | null; terminate(): void } }).Worker;
  return new Promise((resolve, reject) => {
    if (WebWorker) {
      const worker = new WebWorker(url, { type: "module" });
      worker.onmessage = (e) => {
        worker.terminate();
        resolve(e.data);
      };
      worker.onerror = (e) => {
        worker.terminate();
        reject(e instanceof Error ? e : new Error(String((e as { message?: string }).message ?? e)));
      };
    } else {
      // Node's worker does not pick up the parent's tsx loader for its entry module: a small
      // JS entry registers tsx in the worker, then imports the .ts file.
      const entry = `import("tsx/esm/api").then(({ register }) => { register(); return import(${JSON.stringify(url.href)}); })`;
      const worker = new NodeWorker(entry, { eval: true });
      worker.once("message", (report: WorkerReport) => {
        void worker.terminate();
        resolve(report);
      });
      worker.once("error", reject);
    }
  });
}
