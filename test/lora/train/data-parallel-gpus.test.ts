// Data parallelism across GPUs: trainDataParallel({ gpus: N }) starts one process per GPU (rank r
// on cuda:r), the ranks meet through the TCP rendezvous and sum their gradients over NCCL. For
// the GPU machine: one GPU checks the single-rank path of the launcher, several GPUs the run
// itself (20 steps against one GPU on the same global batch within 1e-4 relative, as issue 15
// asks; a resume from a 2-GPU checkpoint on 1 GPU; a killed rank). The same machinery on CPU
// processes runs everywhere: data-parallel-launcher.test.ts.
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "../../harness.ts";
import { encodeGguf, makeTinyModel, seededRandom } from "../../../src/formats/index.ts";
import { Dataset, type DataParallelStepReport, LoraTrainer, RankFailedError, trainDataParallel } from "../../../src/lora/index.ts";
import { gpuUnavailable } from "../../llama/fixtures.ts";
import { gpu, multiGpuSkip, ncclSkip } from "../../cuda/nccl/nccl-probe.ts";

const dir = mkdtempSync(join(tmpdir(), "gpuffi-dp-gpus-"));
const base = join(dir, "base.gguf");
writeFileSync(base, encodeGguf(makeTinyModel({ seed: 6, layers: 2, embd: 32, heads: 4, kvHeads: 2, ff: 48, vocab: 320, ctx: 64 })));
const random = seededRandom(12);
const data = Dataset.fromSequences(Array.from({ length: 32 }, (_, i) => ({
  tokens: Int32Array.from({ length: 17 }, () => Math.floor(random() * 320)),
  counted: Uint8Array.from({ length: 16 }, (_, t) => Number((t + i) % 5 !== 0)),
  source: `s${i}`,
})), 16);
// A global batch of 8 splits over 1, 2, 4 and 8 GPUs.
const options = { base, data, ctx: 16, batch: 8, rank: 4, lr: 1e-2, steps: 20, seed: 3, shuffle: false } as const;
const oneGpuSkip = gpuUnavailable ?? ncclSkip;
const severalGpuSkip = gpuUnavailable ?? multiGpuSkip;
const quiet = { onOutput: () => {} };

/** One process on cuda:0 training the whole batch: the trajectory every run must follow. */
async function oneGpuLosses(): Promise<number[]> {
  using trainer = await LoraTrainer.create({ ...options, device: "cuda:0" });
  const losses: number[] = [];
  for await (const r of trainer.run()) losses.push(r.loss);
  return losses;
}

function assertClose(reports: readonly DataParallelStepReport[], expected: readonly number[], bound: number, what: string): void {
  for (const r of reports) {
    const want = expected[r.step - 1]!;
    assert.ok(Math.abs(r.loss - want) <= bound * want, `${what}, step ${r.step}: ${r.loss} vs one GPU's ${want} (bound ${bound} relative)`);
  }
}

async function collect(run: AsyncIterable<DataParallelStepReport>): Promise<DataParallelStepReport[]> {
  const reports: DataParallelStepReport[] = [];
  for await (const r of run) reports.push(r);
  return reports;
}

test("--gpus 1: one NCCL rank in a process of its own trains what the in-process trainer trains on cuda:0", async () => {
  const expected = await oneGpuLosses();
  const run = await trainDataParallel({ ...options, gpus: 1, ...quiet });
  const reports = await collect(run);
  assert.equal(reports.length, 20);
  assertClose(reports, expected, 1e-5, "1 GPU rank");
  assert.ok(reports.every((r) => r.ranks.length === 1 && r.allReduceMs >= 0));
}, { skip: oneGpuSkip, timeout: 180_000 });

const counts = [2, 4, 8].filter((n) => n <= gpu.deviceCount);

test(`${counts.length > 0 ? counts.join(", ") : "N"} GPUs train one GPU's per-step losses within 1e-4 for 20 steps; a 2-GPU checkpoint resumes on 1 GPU`, async () => {
  const expected = await oneGpuLosses();
  for (const gpus of counts) {
    const run = await trainDataParallel({ ...options, gpus, checkpointEvery: 10, checkpointDir: join(dir, `ckpt-${gpus}`), ...quiet });
    const reports = await collect(run);
    assert.equal(reports.length, 20);
    assertClose(reports, expected, 1e-4, `${gpus} GPUs`);
    assert.ok(reports.every((r) => r.ranks.length === gpus && r.ranks.every((x) => x.allReduceMs >= 0)));
    assert.equal((await run.result).step, 20);
  }
  const resumed = await trainDataParallel({ ...options, gpus: 1, resume: join(dir, "ckpt-2", "step-10"), ...quiet });
  const reports = await collect(resumed);
  assert.deepEqual(reports.map((r) => r.step), Array.from({ length: 10 }, (_, i) => 11 + i));
  assertClose(reports, expected, 1e-4, "resumed on 1 GPU");
}, { skip: severalGpuSkip, timeout: 600_000 });

test("a killed GPU rank ends the others (stuck in NCCL) with a RankFailedError naming it", async () => {
  const run = await trainDataParallel({ ...options, gpus: 2, steps: 1_000_000, ...quiet });
  const iterator = run[Symbol.asyncIterator]();
  await iterator.next();
  process.kill(run.processes[1]!.pid!, "SIGKILL");
  const failure = await (async () => {
    try {
      while (!(await iterator.next()).done) { /* until the launcher ends the run */ }
    } catch (error) {
      return error;
    }
  })();
  assert.ok(failure instanceof RankFailedError, `${failure}`);
  assert.equal(failure.rank, 1);
  assert.equal(failure.exit.signal, "SIGKILL");
  for (const { pid } of run.processes) assert.throws(() => process.kill(pid!, 0), /ESRCH/);
}, { skip: severalGpuSkip, timeout: 120_000 });
