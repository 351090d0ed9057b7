// The pitched-matrix checks that run both on the fake libcudart (pool-pitched.test.ts) and on a
// GPU (pool-gpu.test.ts): a 2D round trip, sub-matrix views, a view of a view, memset2D over a
// view, and a copy through a view on a stream.
import assert from "node:assert/strict";
import type { CudaContext, Pitched2D } from "../../src/cuda/index.ts";

/** `m` is a rows × cols f32 matrix (rows > 110, cols > 317); `data` and `next` are fresh values to write. */
export function checkPitchedMatrix(context: CudaContext, m: Pitched2D, rows: number, cols: number, data: Float32Array, next: Float32Array): void {
  m.copyFromHost(data);
  assert.deepEqual(m.copyToHost(new Float32Array(rows * cols)), data);
  const view = m.view(10, 100, 17, 300);
  assert.equal(view.ptr, m.ptr + 10 * m.pitch + 17 * 4);
  assert.equal(view.ld, m.ld);
  const sub = view.copyToHost(new Float32Array(100 * 300));
  for (let r = 0; r < 100; r++) for (let c = 0; c < 300; c++) assert.equal(sub[r * 300 + c], data[(r + 10) * cols + c + 17], `view element (${r}, ${c})`);
  // A view of a view adds its offsets.
  const inner = view.view(5, 3, 7, 2);
  assert.equal(inner.ptr, m.ptr + 15 * m.pitch + 24 * 4);
  assert.deepEqual(inner.copyToHost(new Float32Array(6)), Float32Array.from([0, 1, 2].flatMap((r) => [0, 1].map((c) => data[(15 + r) * cols + 24 + c]!))));
  view.memset2D(0);
  const after = m.copyToHost(new Float32Array(rows * cols));
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const inside = r >= 10 && r < 110 && c >= 17 && c < 317;
      if (after[r * cols + c] !== (inside ? 0 : data[r * cols + c])) assert.fail(`element (${r}, ${c}) ${inside ? "not cleared" : "changed"}`);
    }
  }
  using stream = context.createStream();
  view.copyFromHost(next, { stream });
  assert.deepEqual(view.copyToHost(new Float32Array(100 * 300), { stream }), next);
}
