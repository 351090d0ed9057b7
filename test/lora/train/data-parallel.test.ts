// Data parallelism without GPUs: two trainers in one process, each a rank training half of every
// global batch, sum their gradients through an in-process reducer (what NCCL does across GPUs).
// Their losses and adapters equal one trainer's on the whole batch. On a GPU with libnccl, one
// NCCL rank goes through the real collective.
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "../../harness.ts";
import { encodeGguf, makeTinyModel, seededRandom } from "../../../src/formats/index.ts";
import { nativeView, type Pointer } from "../../../src/ffi/index.ts";
import { CudaContext, NcclCommunicator, nccl } from "../../../src/cuda/index.ts";
import { Dataset, type GradientReducer, LoraTrainer, NcclGradientReducer, shardOf } from "../../../src/lora/index.ts";
import { gpuUnavailable, llamaUnavailable } from "../../llama/fixtures.ts";
import { ncclSkip } from "../../cuda/nccl/nccl-probe.ts";

/** Ranks of one process meet at each sum; the last to arrive adds every rank's range into all. */
function inProcessReducers(ranks: number): GradientReducer[] {
  let waiting: { ptr: Pointer; byteLength: number; done: () => void }[] = [];
  return Array.from({ length: ranks }, (_, rank) => ({
    rank,
    ranks,
    sum: (ptr: Pointer, byteLength: number) =>
      new Promise<void>((done) => {
        waiting.push({ ptr, byteLength, done });
        if (waiting.length < ranks) return;
        const views = waiting.map((w) => new Float32Array(nativeView(w.ptr, w.byteLength)));
        const total = new Float32Array(views[0]!.length);
        for (const v of views) for (let i = 0; i < v.length; i++) total[i]! += v[i]!;
        for (const v of views) v.set(total);
        const arrived = waiting;
        waiting = [];
        for (const w of arrived) w.done();
      }),
  }));
}

test("two ranks with half a batch each train what one process trains on the whole batch", async () => {
  const base = join(mkdtempSync(join(tmpdir(), "gpuffi-dp-")), "base.gguf");
  writeFileSync(base, encodeGguf(makeTinyModel({ seed: 4, layers: 2, embd: 32, heads: 4, kvHeads: 2, ff: 48, vocab: 320, ctx: 64 })));
  const random = seededRandom(8);
  const sequences = Array.from({ length: 8 }, (_, i) => ({
    tokens: Int32Array.from({ length: 11 }, () => Math.floor(random() * 320)),
    counted: Uint8Array.from({ length: 10 }, (_, t) => Number((t + i) % 4 !== 0)),
    source: `s${i}`,
  }));
  const options = { base, data: Dataset.fromSequences(sequences, 10), ctx: 10, batch: 4, rank: 2, lr: 1e-2, steps: 6, seed: 5, clip: 0.5, threads: 1 } as const;
  using single = await LoraTrainer.create(options);
  const expected: number[] = [];
  for await (const r of single.run()) expected.push(r.loss);

  const reducers = inProcessReducers(2);
  using rank0 = await LoraTrainer.create({ ...options, reducer: reducers[0] });
  using rank1 = await LoraTrainer.create({ ...options, reducer: reducers[1] });
  const losses: number[][] = [[], []];
  for (let step = 0; step < options.steps; step++) {
    const [a, b] = await Promise.all([rank0.trainStep(), rank1.trainStep()]);
    losses[0]!.push(a.loss);
    losses[1]!.push(b.loss);
  }
  for (const ranked of losses) ranked.forEach((loss, i) => assert.ok(Math.abs(loss - expected[i]!) <= 1e-6 * expected[i]!, `step ${i + 1}: ${loss} vs ${expected[i]}`));
  const want = single.weights();
  for (const t of [rank0, rank1]) {
    t.weights().pairs.forEach((p, i) => {
      for (const which of ["a", "b"] as const) p[which].forEach((v, j) => assert.ok(Math.abs(v - want.pairs[i]![which][j]!) <= 1e-6, `${p.weight}.${which}[${j}]`));
    });
  }
  await assert.rejects(LoraTrainer.create({ ...options, batch: 3, reducer: inProcessReducers(2)[0] }), /batch 3 does not split into 2 ranks/);
  assert.deepEqual(shardOf([1, 2, 3, 4, 5, 6], 1, 3), [3, 4]);
}, { skip: llamaUnavailable, timeout: 60_000 });

test("cuda:0 as one NCCL rank: the all-reduced step equals the step without a reducer", async () => {
  const base = join(mkdtempSync(join(tmpdir(), "gpuffi-dp-nccl-")), "base.gguf");
  writeFileSync(base, encodeGguf(makeTinyModel({ seed: 6, layers: 2, embd: 32, heads: 4, kvHeads: 2, ff: 48, vocab: 320, ctx: 64 })));
  const random = seededRandom(9);
  const sequences = Array.from({ length: 4 }, (_, i) => ({ tokens: Int32Array.from({ length: 11 }, () => Math.floor(random() * 320)), counted: new Uint8Array(10).fill(1), source: `s${i}` }));
  const options = { base, data: Dataset.fromSequences(sequences, 10), ctx: 10, batch: 2, rank: 2, lr: 1e-2, steps: 4, seed: 5, device: "cuda:0" } as const;
  using plain = await LoraTrainer.create(options);
  const expected: number[] = [];
  for await (const r of plain.run()) expected.push(r.loss);
  using context = CudaContext.create();
  using comm = NcclCommunicator.initRank(context, { uniqueId: nccl().uniqueId(), rank: 0, nranks: 1 });
  using stream = context.createStream();
  using reduced = await LoraTrainer.create({ ...options, reducer: new NcclGradientReducer(comm, context, stream) });
  const losses: number[] = [];
  for await (const r of reduced.run()) losses.push(r.loss);
  losses.forEach((loss, i) => assert.ok(Math.abs(loss - expected[i]!) <= 1e-6 * expected[i]!, `step ${i + 1}: ${loss} vs ${expected[i]}`));
}, { skip: gpuUnavailable ?? ncclSkip, timeout: 60_000 });
