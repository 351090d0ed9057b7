// A trained adapter, exported to PEFT (`gpuffi lora export-peft`), gives PyTorch + PEFT the logits
// llama.cpp gives with the GGUF adapter, within 1e-3: the trainer's output is usable from Python
// as it is from llama.cpp. Needs python3 with torch, transformers and peft (the GPU machine has
// them); test/lora/train/fixture/peft_logits.py is the PyTorch side, in float64.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "../../harness.ts";
import { Llama, LlamaContext, LlamaModel, LoraAdapter } from "../../../src/llama/index.ts";
import { Dataset, LoraTrainer, exportPeftAdapter } from "../../../src/lora/index.ts";
import { llamaUnavailable } from "../../llama/fixtures.ts";
import { loadTrainFixture } from "./fixture.ts";

const script = fileURLToPath(new URL("./fixture/peft_logits.py", import.meta.url));
const noPeft = spawnSync("python3", ["-c", "import torch, transformers, peft"], { stdio: "ignore" }).status === 0
  ? undefined
  : "python3 with torch, transformers and peft is not installed here (the GPU machine has them)";

test("a trained adapter exported to PEFT gives PyTorch + PEFT llama.cpp's logits within 1e-3", async () => {
  const fixture = loadTrainFixture();
  const dir = mkdtempSync(join(tmpdir(), "gpuffi-peft-export-"));
  try {
    const { tokens } = fixture;
    const sequences = tokens.batches.flat().map((t, i) => ({ tokens: Int32Array.from(t), counted: new Uint8Array(t.length - 1).fill(1), source: `sequence ${i}` }));
    const adapterPath = join(dir, "trained.gguf");
    {
      using trainer = await LoraTrainer.create({
        base: fixture.basePath, init: fixture.adapterPath, data: Dataset.fromSequences(sequences, tokens.length - 1),
        ctx: tokens.length - 1, batch: tokens.batch, steps: 4, lr: 1e-2, shuffle: false, threads: 1, llama: Llama.shared(),
      });
      for await (const _ of trainer.run());
      await trainer.save(adapterPath);
    }
    await exportPeftAdapter(adapterPath, join(dir, "peft"), { base: fixture.basePath });

    const prompt = tokens.batches[0]![0]!;
    using model = await LlamaModel.load(fixture.basePath, { gpuLayers: 0 });
    using context = LlamaContext.create(model, { contextSize: 64, threads: 2, cacheType: "f32", flashAttention: false });
    using adapter = await LoraAdapter.load(model, adapterPath);
    context.setAdapters([{ adapter, scale: 1 }]);
    context.evaluate(Int32Array.from(prompt), { allLogits: true });
    const ours = prompt.map((_, i) => context.logits(i).slice());

    writeFileSync(join(dir, "tokens.json"), JSON.stringify({ tokens: prompt }));
    const python = spawnSync("python3", [script, fixture.hfDir, join(dir, "peft"), join(dir, "tokens.json"), join(dir, "logits.json")], { encoding: "utf8" });
    assert.equal(python.status, 0, python.stderr);
    const theirs = JSON.parse(readFileSync(join(dir, "logits.json"), "utf8")) as { logits: number[][] };
    let diff = 0;
    let ref = 0;
    ours.forEach((row, i) => row.forEach((v, j) => {
      diff += (v - theirs.logits[i]![j]!) ** 2;
      ref += theirs.logits[i]![j]! ** 2;
    }));
    assert.ok(Math.sqrt(diff / ref) < 1e-3, `‖llama.cpp − PyTorch+PEFT‖ / ‖PyTorch+PEFT‖ = ${Math.sqrt(diff / ref)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, { skip: llamaUnavailable ?? noPeft, timeout: 180_000 });
