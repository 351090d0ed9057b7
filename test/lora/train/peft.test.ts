// Against PyTorch + PEFT (fixture/reference/, made on the GPU machine by make_peft_reference.py):
// continuing the same initial adapter on the same batches with AdamW, gpuffi's per-step losses
// agree within 1e-3 relative, and the trained A and B land within 2% of PEFT's change.
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { Llama } from "../../../src/llama/index.ts";
import { Dataset, LoraTrainer } from "../../../src/lora/index.ts";
import { llamaUnavailable } from "../../llama/fixtures.ts";
import { loadTrainFixture } from "./fixture.ts";

const fixture = loadTrainFixture();

test("AdamW from the same adapter on the same batches: PEFT's losses within 1e-3, its trained A/B within 2% of the change", async () => {
  const { tokens, reference } = fixture;
  const sequences = tokens.batches.flat().map((t, i) => ({ tokens: Int32Array.from(t), counted: new Uint8Array(t.length - 1).fill(1), source: `batch ${Math.floor(i / tokens.batch)}` }));
  const o = tokens.optimizer;
  using trainer = await LoraTrainer.create({
    base: fixture.basePath,
    init: fixture.adapterPath,
    data: Dataset.fromSequences(sequences, tokens.length - 1),
    ctx: tokens.length - 1,
    batch: tokens.batch,
    steps: tokens.steps,
    shuffle: false,
    lr: o.lr,
    beta1: o.beta1,
    beta2: o.beta2,
    eps: o.eps,
    weightDecay: o.weightDecay,
    threads: 1,
    llama: Llama.shared(),
  });
  const losses: number[] = [];
  for await (const r of trainer.run()) losses.push(r.loss);
  const peft = reference!.json.runs.float32!;
  losses.forEach((loss, i) => assert.ok(Math.abs(loss - peft.losses[i]!) / peft.losses[i]! < 1e-3, `step ${i + 1}: ${loss} vs PEFT ${peft.losses[i]}`));
  const trained = reference!.adapters.get("float32")!;
  let diff = 0;
  let change = 0;
  for (const pair of trainer.weights().pairs) {
    const theirs = trained.pairs.get(pair.weight)!;
    const initial = fixture.lora.pairs.get(pair.weight)!;
    for (const which of ["a", "b"] as const) {
      pair[which].forEach((v, i) => {
        diff += (v - theirs[which][i]!) ** 2;
        change += (theirs[which][i]! - initial[which][i]!) ** 2;
      });
    }
  }
  assert.ok(Math.sqrt(diff / change) < 0.02, `‖ours − PEFT‖ / ‖PEFT − initial‖ = ${Math.sqrt(diff / change)}`);
}, { skip: llamaUnavailable ?? (fixture.reference === undefined ? "fixture/reference/ not made yet (make_peft_reference.py on the GPU machine)" : undefined), timeout: 120_000 });
