// The TCP gradient reducer on its own, its ranks in this process: the sum is the float32 sum in
// rank order on every rank (bit for bit), one rank alone is the identity, and a rank that goes
// away fails the others' sums with an error naming it.
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { HostMemory } from "../../../src/ffi/index.ts";
import { TcpGradientReducer, TrainingError } from "../../../src/lora/index.ts";
import { freePort } from "../../cuda/nccl/rendezvous-helpers.ts";

const host = "127.0.0.1";

async function connectAll(ranks: number): Promise<TcpGradientReducer[]> {
  const port = await freePort();
  return Promise.all(Array.from({ length: ranks }, (_, rank) => TcpGradientReducer.connect({ host, port, rank, ranks, timeoutMs: 20_000 })));
}

test("three ranks: every rank gets the float32 sum in rank order, bit for bit, step after step", async () => {
  const reducers = await connectAll(3);
  const n = 100_003;
  const memories = reducers.map(() => HostMemory.alloc(n * 4));
  try {
    for (let step = 0; step < 3; step++) {
      // Magnitudes far apart, so that another order of addition would round differently.
      const inputs = reducers.map((_, rank) => Float32Array.from({ length: n }, (_, i) => ((i * 7919 + rank * 104729 + step) % 1000) * 10 ** ((rank + i) % 9 - 4) * (i % 2 ? -1 : 1)));
      inputs.forEach((values, rank) => new Float32Array(memories[rank]!.bytes().buffer, memories[rank]!.bytes().byteOffset, n).set(values));
      await Promise.all(reducers.map((r, rank) => r.sum(memories[rank]!.ptr, n * 4)));
      const expected = Float32Array.from(inputs[0]!);
      for (const values of inputs.slice(1)) for (let i = 0; i < n; i++) expected[i] = Math.fround(expected[i]! + values[i]!);
      for (const memory of memories) assert.deepEqual(new Uint8Array(memory.bytes()), new Uint8Array(expected.buffer), `step ${step}`);
    }
  } finally {
    for (const r of reducers) r.close();
    for (const m of memories) m.dispose();
  }
});

test("one rank needs nobody and leaves its values; bad arguments are TrainingErrors", async () => {
  using alone = await TcpGradientReducer.connect({ host, port: 0, rank: 0, ranks: 1 });
  using memory = HostMemory.from(Float32Array.of(1.5, -2));
  await alone.sum(memory.ptr, 8);
  assert.deepEqual(new Float32Array(memory.bytes().slice().buffer), Float32Array.of(1.5, -2));
  await assert.rejects(alone.sum(memory.ptr, 6), /byteLength must be a multiple of 4/);
  await assert.rejects(TcpGradientReducer.connect({ host, port: 1, rank: 2, ranks: 2 }), (e: unknown) => e instanceof TrainingError && /rank must be in \[0, 2\)/.test(e.message));
  await assert.rejects(TcpGradientReducer.connect({ host, port: 1, rank: 0, ranks: 0 }), /ranks must be a whole number/);
});

test("a rank that goes away fails the hub's sum naming it, and the hub's going fails the others'", async () => {
  const [hub, one, two] = await connectAll(3);
  using memory = HostMemory.alloc(16);
  two!.close();
  await assert.rejects(hub!.sum(memory.ptr, 16), (e: unknown) => e instanceof TrainingError && e.code === "ERR_TRAIN_PEER_LOST" && /rank 0 lost rank 2 of 3/.test(e.message));
  const waiting = one!.sum(memory.ptr, 16);
  hub!.close();
  await assert.rejects(waiting, (e: unknown) => e instanceof TrainingError && e.code === "ERR_TRAIN_PEER_LOST" && /rank 1 lost rank 0 of 3 \(the TCP reducer's hub\)/.test(e.message));
  one!.close();
});
