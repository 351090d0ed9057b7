// Data parallelism in separate processes, on the CPU: trainDataParallel and `gpuffi lora train
// --ranks N` start N rank processes of this runtime that sum their gradients over TCP. They train
// the per-step losses and the adapter of one process on the whole batch (1e-6), resume a
// checkpoint with another N on the same trajectory, stop together, and a killed rank ends the
// run with a RankFailedError that names it. The same machinery on GPUs (NCCL): data-parallel-gpus.test.ts.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "../../harness.ts";
import { encodeGguf, makeTinyModel, seededRandom } from "../../../src/formats/index.ts";
import { Dataset, type DataParallelStepReport, LoraTrainer, RankFailedError, TrainingError, readCheckpoint, readLoraGguf, trainDataParallel } from "../../../src/lora/index.ts";
import { llamaUnavailable } from "../../llama/fixtures.ts";
import { runCli } from "../tools-fixtures.ts";

const dir = mkdtempSync(join(tmpdir(), "gpuffi-dp-launch-"));
const base = join(dir, "base.gguf");
writeFileSync(base, encodeGguf(makeTinyModel({ seed: 4, layers: 2, embd: 32, heads: 4, kvHeads: 2, ff: 48, vocab: 320, ctx: 64 })));
const random = seededRandom(8);
// Masks differ between sequences, so the ranks' slices count different numbers of positions.
const data = Dataset.fromSequences(Array.from({ length: 16 }, (_, i) => ({
  tokens: Int32Array.from({ length: 11 }, () => Math.floor(random() * 320)),
  counted: Uint8Array.from({ length: 10 }, (_, t) => Number((t + i) % 4 !== 0)),
  source: `s${i}`,
})), 10);
const options = { base, data, ctx: 10, batch: 4, rank: 2, lr: 1e-2, steps: 10, seed: 5, clip: 0.5, threads: 1 } as const;
// Rank output (none is expected) stays out of the test log unless a test fails.
const quiet = { onOutput: () => {} };

let single: { losses: number[]; weights: ReturnType<LoraTrainer["weights"]> } | undefined;
/** One process on the whole batch: the trajectory every data-parallel run must follow. */
async function reference(): Promise<NonNullable<typeof single>> {
  if (single === undefined) {
    using trainer = await LoraTrainer.create(options);
    const losses: number[] = [];
    for await (const r of trainer.run()) losses.push(r.loss);
    single = { losses, weights: trainer.weights() };
  }
  return single;
}

function assertSameLosses(reports: readonly { step: number; loss: number }[], expected: readonly number[], what: string): void {
  for (const r of reports) {
    const want = expected[r.step - 1]!;
    assert.ok(Math.abs(r.loss - want) <= 1e-6 * want, `${what}, step ${r.step}: ${r.loss} vs one process's ${want}`);
  }
}

async function collect(run: AsyncIterable<DataParallelStepReport>): Promise<DataParallelStepReport[]> {
  const reports: DataParallelStepReport[] = [];
  for await (const r of run) reports.push(r);
  return reports;
}

test("2 CPU processes train one process's per-step losses and adapter (1e-6); rank 0 writes checkpoints and the adapter", async () => {
  const { losses, weights } = await reference();
  const out = join(dir, "two.gguf");
  const run = await trainDataParallel({ ...options, ranks: 2, out, checkpointEvery: 5, checkpointDir: join(dir, "two-ckpt"), ...quiet });
  assert.deepEqual(run.processes.map((p) => p.rank), [0, 1]);
  assert.ok(run.processes.every((p) => typeof p.pid === "number" && p.pid !== process.pid));
  const reports = await collect(run);
  assert.deepEqual(reports.map((r) => r.step), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assertSameLosses(reports, losses, "2 ranks");
  for (const r of reports) {
    assert.deepEqual(r.ranks.map((x) => x.rank), [0, 1]);
    assert.equal(r.ranks[0]!.rankTokens + r.ranks[1]!.rankTokens, r.tokens, "the slices' counted positions add up to the batch's");
    assert.ok(r.ranks.every((x) => x.allReduceMs >= 0 && x.allReduceMs <= x.stepMs && x.rankTokensPerSecond > 0));
  }
  const result = await run.result;
  assert.deepEqual({ step: result.step, totalSteps: result.totalSteps, stopped: result.stopped }, { step: 10, totalSteps: 10, stopped: false });
  const trained = await readLoraGguf(out);
  trained.pairs.forEach((p, i) => {
    for (const which of ["a", "b"] as const) p[which].forEach((v, j) => assert.ok(Math.abs(v - weights.pairs[i]![which][j]!) <= 1e-6, `${p.weight}.${which}[${j}]`));
  });
  const checkpoint = await readCheckpoint(join(dir, "two-ckpt", "step-5"));
  assert.equal(checkpoint.state.step, 5);
  assert.equal(checkpoint.state.options.batch, 4, "the checkpoint holds the global batch, nothing about the ranks");
  assert.ok(!JSON.stringify(checkpoint.state.options).includes("ranks"));
}, { skip: llamaUnavailable, timeout: 120_000 });

test("a checkpoint of 2 ranks resumes on 4 ranks and on 1, continuing one process's trajectory", async () => {
  const { losses } = await reference();
  const resume = join(dir, "two-ckpt", "step-5");
  if (!existsSync(resume)) await (await trainDataParallel({ ...options, ranks: 2, steps: 5, checkpointEvery: 5, checkpointDir: join(dir, "two-ckpt"), ...quiet })).result;
  for (const ranks of [4, 1]) {
    const run = await trainDataParallel({ ...options, ranks, resume, ...quiet });
    assert.equal(run.startStep, 5);
    const reports = await collect(run);
    assert.deepEqual(reports.map((r) => r.step), [6, 7, 8, 9, 10], `${ranks} ranks`);
    assertSameLosses(reports, losses, `resumed on ${ranks} ranks`);
    assert.equal((await run.result).step, 10);
  }
}, { skip: llamaUnavailable, timeout: 180_000 });

test("a killed rank ends the run promptly with a RankFailedError naming it and its signal", async () => {
  const run = await trainDataParallel({ ...options, ranks: 3, batch: 6, steps: 100_000, ...quiet });
  const iterator = run[Symbol.asyncIterator]();
  assert.equal((await iterator.next()).value?.step, 1);
  const victim = run.processes[1]!.pid!;
  const killed = performance.now();
  process.kill(victim, "SIGKILL");
  let failure: unknown;
  try {
    while (!(await iterator.next()).done) { /* the others keep reporting until they are ended */ }
  } catch (error) {
    failure = error;
  }
  const ended = performance.now() - killed;
  assert.ok(failure instanceof RankFailedError, `${failure}`);
  assert.equal(failure.code, "ERR_TRAIN_RANK_FAILED");
  assert.equal(failure.rank, 1);
  assert.equal(failure.exit.signal, "SIGKILL");
  assert.match(failure.message, /^rank 1 of 3 was killed by SIGKILL; the launcher ended the other ranks/);
  await assert.rejects(run.result, (e: unknown) => e === failure);
  assert.ok(ended < 10_000, `the run ended ${ended.toFixed(0)} ms after the kill`);
  for (const { pid } of run.processes) assert.throws(() => process.kill(pid!, 0), /ESRCH/, `rank process ${pid} is gone`);
}, { skip: llamaUnavailable, timeout: 120_000 });

test("aborting the signal stops every rank after the same step, and rank 0 still writes the adapter", async () => {
  const controller = new AbortController();
  const out = join(dir, "stopped.gguf");
  const run = await trainDataParallel({ ...options, ranks: 2, steps: 100_000, out, signal: controller.signal, ...quiet });
  const reports: DataParallelStepReport[] = [];
  for await (const r of run) {
    reports.push(r);
    controller.abort();
  }
  const result = await run.result;
  assert.ok(result.stopped && result.step >= 1 && result.step < 100, `stopped after step ${result.step}`);
  assert.equal(reports.at(-1)!.step, result.step, "every rank reported every step up to the agreed last one");
  assert.equal((await readLoraGguf(out)).rank, 2);
}, { skip: llamaUnavailable, timeout: 120_000 });

test("bad plans are refused before any process starts; a rank that refuses the job is named", async () => {
  const refused = (pattern: RegExp, code = "ERR_TRAIN_ARGUMENT") => (e: unknown) => e instanceof TrainingError && e.code === code && pattern.test(e.message);
  await assert.rejects(trainDataParallel({ ...options, ranks: 0 }), refused(/ranks must be a whole number ≥ 1, got 0/));
  await assert.rejects(trainDataParallel({ ...options, ranks: 1.5 }), refused(/ranks must be a whole number ≥ 1, got 1.5/));
  await assert.rejects(trainDataParallel({ ...options, gpus: -1 }), refused(/gpus must be a whole number ≥ 1, got -1/));
  await assert.rejects(trainDataParallel({ ...options }), refused(/give either gpus .* or ranks/));
  await assert.rejects(trainDataParallel({ ...options, ranks: 2, gpus: 2 }), refused(/give either gpus .* or ranks/));
  await assert.rejects(trainDataParallel({ ...options, gpus: 2, device: "cpu" }), refused(/gpus trains on CUDA devices, but device is cpu/));
  await assert.rejects(trainDataParallel({ ...options, gpus: 1000 }), refused(/1000 GPU ranks need 1000 CUDA devices; ggml sees \d+ here/, "ERR_TRAIN_DEVICES"));
  await assert.rejects(trainDataParallel({ ...options, ranks: 3 }), refused(/the global batch of 4 does not split evenly over 3 ranks × 1 micro-batch: make batch a multiple of 3/));
  await assert.rejects(trainDataParallel({ ...options, ranks: 2, gradAccum: 4 }), refused(/batch of 4 does not split evenly over 2 ranks × 4 micro-batches: make batch a multiple of 8/));
  await assert.rejects(trainDataParallel({ ...options, ranks: 2, lr: -1 }), refused(/lr must be in/));
  await assert.rejects(trainDataParallel({ ...options, ranks: 2, checkpointEvery: 5 }), refused(/checkpointEvery needs checkpointDir/));
  // Only the ranks can tell that the checkpoint was made with another learning rate.
  const resume = join(dir, "two-ckpt", "step-5");
  if (existsSync(resume)) {
    await assert.rejects(trainDataParallel({ ...options, ranks: 2, lr: 2e-2, resume, ...quiet }), (e: unknown) =>
      e instanceof RankFailedError && e.exit.error?.code === "ERR_TRAIN_RESUME_MISMATCH" && /^rank [01] of 2 failed: ResumeMismatchError: .*option "lr": checkpoint 0\.01, this run 0\.02/.test(e.message));
  }
}, { skip: llamaUnavailable, timeout: 120_000 });

test("gpuffi lora train --ranks 2: one JSON line per step with every rank's timings, the adapter written; usage errors", async () => {
  const text = join(dir, "text.txt");
  writeFileSync(text, "the cat sat on the mat. ".repeat(40));
  const out = join(dir, "cli.gguf");
  const { code, out: stdout, err } = await runCli("lora", "train", "--base", base, "--data", text, "--out", out, "--ctx", "16", "--batch", "4", "--steps", "3", "--rank", "2", "--threads", "1", "--ranks", "2", "--json");
  assert.equal(code, 0, err);
  const steps = stdout.trim().split("\n").map((line) => JSON.parse(line) as DataParallelStepReport);
  assert.deepEqual(steps.map((s) => s.step), [1, 2, 3]);
  assert.ok(steps.every((s) => s.ranks.length === 2 && Number.isFinite(s.loss) && s.ranks.every((r) => typeof r.allReduceMs === "number")));
  assert.equal((await readLoraGguf(out)).rank, 2);
  for (const [args, message] of [
    [["--ranks", "0"], /--ranks needs an integer ≥ 1, got 0/],
    [["--gpus", "2", "--ranks", "2"], /give one/],
    [["--gpus", "2", "--device", "cpu"], /--gpus places the ranks itself .*drop --device/],
  ] as const) {
    const usage = await runCli("lora", "train", "--base", base, "--data", text, "--out", out, ...args);
    assert.equal(usage.code, 2, args.join(" "));
    assert.match(usage.err, message);
  }
  const devices = await runCli("lora", "train", "--base", base, "--data", text, "--out", out, "--gpus", "1000");
  assert.equal(devices.code, 1);
  assert.match(devices.err, /1000 GPU ranks need 1000 CUDA devices/);
}, { skip: llamaUnavailable, timeout: 120_000 });
