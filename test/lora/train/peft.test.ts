// Against PyTorch + PEFT (fixture/reference/, made on the GPU machine by make_peft_reference.py):
// continuing the same initial adapter on the same batches with AdamW, gpuffi's per-step losses
// agree within 1e-3 relative, and the trained A and B land within 2% of PEFT's change, on the CPU
// and on CUDA; and the CUDA trajectory agrees with the CPU's the same way.
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { Llama } from "../../../src/llama/index.ts";
import { Dataset, LoraTrainer } from "../../../src/lora/index.ts";
import { gpuUnavailable, llamaUnavailable } from "../../llama/fixtures.ts";
import { loadTrainFixture } from "./fixture.ts";

const fixture = loadTrainFixture();
const noReference = fixture.reference === undefined ? "fixture/reference/ not made yet (make_peft_reference.py on the GPU machine)" : undefined;

interface Trajectory {
  readonly losses: readonly number[];
  /** Trained A and B per adapted weight. */
  readonly pairs: ReadonlyMap<string, { a: ArrayLike<number>; b: ArrayLike<number> }>;
}

const trajectories = new Map<string, Promise<Trajectory>>();

/** The fixture's run on `device`, trained once per device and shared by the tests below. */
function trajectory(device: string): Promise<Trajectory> {
  let run = trajectories.get(device);
  if (run === undefined) trajectories.set(device, (run = train(device)));
  return run;
}

async function train(device: string): Promise<Trajectory> {
  const { tokens } = fixture;
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
    device,
    llama: Llama.shared(),
  });
  const losses: number[] = [];
  for await (const r of trainer.run()) losses.push(r.loss);
  return { losses, pairs: new Map(trainer.weights().pairs.map((p) => [p.weight, { a: p.a, b: p.b }])) };
}

/** Per-step losses within 1e-3 relative; trained A/B within 2% of the expected change from the initial adapter. */
function assertAgree(ours: Trajectory, theirs: Trajectory, who: string): void {
  ours.losses.forEach((loss, i) => assert.ok(Math.abs(loss - theirs.losses[i]!) / theirs.losses[i]! < 1e-3, `step ${i + 1}: ${loss} vs ${who} ${theirs.losses[i]}`));
  let diff = 0;
  let change = 0;
  for (const [weight, pair] of ours.pairs) {
    const expected = theirs.pairs.get(weight)!;
    const initial = fixture.lora.pairs.get(weight)!;
    for (const which of ["a", "b"] as const) {
      for (let i = 0; i < pair[which].length; i++) {
        diff += (pair[which][i]! - expected[which][i]!) ** 2;
        change += (expected[which][i]! - initial[which][i]!) ** 2;
      }
    }
  }
  assert.ok(Math.sqrt(diff / change) < 0.02, `‖ours − ${who}‖ / ‖${who} − initial‖ = ${Math.sqrt(diff / change)}`);
}

function peft(): Trajectory {
  return { losses: fixture.reference!.json.runs.float32!.losses, pairs: fixture.reference!.adapters.get("float32")!.pairs };
}

for (const [device, unavailable] of [["cpu", llamaUnavailable], ["cuda:0", gpuUnavailable]] as const) {
  test(`${device}: AdamW from the same adapter on the same batches: PEFT's losses within 1e-3, its trained A/B within 2% of the change`, async () => {
    assertAgree(await trajectory(device), peft(), "PEFT");
  }, { skip: unavailable ?? noReference, timeout: 120_000 });
}

test("CUDA's trajectory agrees with the CPU's: losses within 1e-3, A/B within 2% of the change", async () => {
  assertAgree(await trajectory("cuda:0"), await trajectory("cpu"), "CPU");
}, { skip: gpuUnavailable ?? noReference, timeout: 120_000 });
