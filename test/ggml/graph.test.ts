// The typed graph layer over ggml (src/ggml/context.ts, tensor.ts, backend.ts) on the CPU backend:
// products and their gradients against float64, typed refusals before ggml could abort, and the
// transposed-product rewrite the CPU trainer relies on.
import assert from "node:assert/strict";
import { test } from "../harness.ts";
import { seededRandom } from "../../src/formats/tiny/random.ts";
import { BackendBuffer, ComputeGraph, Ggml, GgmlContext, GgmlOp, Scheduler, type Tensor, TensorType } from "../../src/ggml/index.ts";
import { Llama } from "../../src/llama/index.ts";
import { llamaUnavailable } from "../llama/fixtures.ts";

function random(seed: number, n: number): Float32Array {
  const next = seededRandom(seed);
  return Float32Array.from({ length: n }, () => next() * 2 - 1);
}

function relative(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let diff = 0;
  let ref = 0;
  for (let i = 0; i < expected.length; i++) {
    diff += (actual[i]! - expected[i]!) ** 2;
    ref += expected[i]! ** 2;
  }
  return Math.sqrt(diff / ref);
}

/** W [k, m] (ne0 = k) times x [k, n]: out [m, n], out[o, r] = Σ W[i, o]·x[i, r], in float64. */
function matmul64(w: Float32Array, x: Float32Array, k: number, m: number, n: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let r = 0; r < n; r++) for (let o = 0; o < m; o++) {
    let s = 0;
    for (let i = 0; i < k; i++) s += w[o * k + i]! * x[r * k + i]!;
    out[r * m + o] = s;
  }
  return out;
}

interface Setup {
  readonly ctx: GgmlContext;
  readonly persistent: GgmlContext;
  readonly w: Tensor;
  readonly x: Tensor;
  readonly wValues: Float32Array;
  readonly xValues: Float32Array;
  dispose(): void;
}

const [k, m, n] = [48, 40, 24];

/** W (frozen) and x (a param) on the CPU backend, filled with fresh random values. */
function setup(randomSeed: number): Setup & { backend: ReturnType<Ggml["backend"]>; wt: Tensor; seed: Tensor } {
  const ggml = Ggml.open(Llama.shared().dir);
  const backend = ggml.backend("cpu", { threads: 1 });
  const persistent = new GgmlContext(ggml.base, { tensors: 4 });
  // The gradient the backward pass starts from: d loss / d loss = 1.
  const seed = persistent.tensor(TensorType.F32, [1], "seed");
  const w = persistent.tensor(TensorType.F32, [k, m], "W");
  const x = persistent.tensor(TensorType.F32, [k, n], "x").markParam();
  const wt = persistent.tensor(TensorType.F32, [m, k], "W transposed");
  const buffer = BackendBuffer.allocate(persistent, backend);
  const wValues = random(randomSeed, k * m);
  const xValues = random(randomSeed + 1, k * n);
  w.write(wValues);
  x.write(xValues);
  const wtValues = new Float32Array(k * m);
  for (let o = 0; o < m; o++) for (let i = 0; i < k; i++) wtValues[i * m + o] = wValues[o * k + i]!;
  wt.write(wtValues);
  seed.write(new Float32Array([1]));
  const ctx = new GgmlContext(ggml.base, { tensors: 256, graphs: { count: 1, size: 256, grads: true } });
  return {
    ctx, persistent, w, x, wValues, xValues, backend,
    dispose() {
      ctx.dispose();
      buffer.dispose();
      persistent.dispose();
      backend.dispose();
    },
    wt,
    seed,
  };
}

test("mul_mat on the CPU backend gives W·x of float64 within 1e-6", async () => {
  const s = setup(11);
  try {
    // Ops on a tensor make their result in the tensor's context: x lives in the persistent one.
    assert.throws(() => s.x.linear(s.w), (e: Error & { code?: string }) => e.code === "ERR_GGML_CONTEXT_FULL");
    const y = s.ctx.mulMat(s.w, s.x).markOutput();
    const twice = y.add(y).markOutput();
    const graph = s.ctx.graph(256).expand(twice);
    using sched = new Scheduler([s.backend], { graphSize: 256 });
    await sched.compute(graph);
    const expected = matmul64(s.wValues, s.xValues, k, m, n);
    assert.ok(relative(y.read(), expected) < 1e-6);
    assert.deepEqual(twice.read(), y.read().map((v) => 2 * v));
  } finally {
    s.dispose();
  }
}, { skip: llamaUnavailable });

for (const rewrite of [false, true]) {
  test(`the gradient of ½‖W·x‖² with respect to x is Wᵀ·W·x within 1e-5 of float64${rewrite ? ", with out_prod rewritten to mul_mat(Wᵀ, g)" : ""}`, async () => {
    const s = setup(21);
    try {
      const y = s.ctx.mulMat(s.w, s.x);
      const loss = s.ctx.scale(s.ctx.sum(s.ctx.sqr(y)), 0.5).markLoss().markOutput();
      const graph: ComputeGraph = s.ctx.graph(256, { grads: true }).expand(loss);
      graph.backward(s.ctx, new Map([[loss, s.seed]]));
      const grad = graph.grad(s.x)!;
      grad.markOutput();
      graph.expand(grad);
      const products = () => Array.from({ length: graph.nodeCount }, (_, i) => graph.node(i).op);
      assert.ok(products().includes(GgmlOp.outProd), "ggml's backward of mul_mat has an out_prod");
      if (rewrite) {
        assert.equal(graph.transposeProducts(new Map([[s.w.ptr, s.wt]])), 1);
        assert.ok(!products().includes(GgmlOp.outProd));
      }
      using sched = new Scheduler([s.backend], { graphSize: 256 });
      await sched.compute(graph);
      const wx = matmul64(s.wValues, s.xValues, k, m, n);
      // ∂/∂x[i, r] = Σ_o W[i, o]·(W·x)[o, r]
      const expected = new Float64Array(k * n);
      for (let r = 0; r < n; r++) for (let i = 0; i < k; i++) {
        let sum = 0;
        for (let o = 0; o < m; o++) sum += s.wValues[o * k + i]! * wx[r * m + o]!;
        expected[r * k + i] = sum;
      }
      assert.ok(relative(grad.read(), expected) < 1e-5, `relative error ${relative(grad.read(), expected)}`);
    } finally {
      s.dispose();
    }
  }, { skip: llamaUnavailable });
}

test("transposeProducts leaves products alone whose copy does not fit, and the graph still computes", async () => {
  const s = setup(31);
  try {
    const y = s.ctx.mulMat(s.w, s.x);
    const loss = s.ctx.sum(s.ctx.sqr(y)).markLoss();
    const graph = s.ctx.graph(256, { grads: true }).expand(loss);
    graph.backward(s.ctx, new Map([[loss, s.seed]]));
    // A "copy" of the wrong shape (W itself, not Wᵀ) is not used.
    assert.equal(graph.transposeProducts(new Map([[s.w.ptr, s.w]])), 0);
    using sched = new Scheduler([s.backend], { graphSize: 256 });
    await sched.compute(graph);
    assert.ok(Number.isFinite(loss.read()[0]!));
  } finally {
    s.dispose();
  }
}, { skip: llamaUnavailable });

test("ops refuse shapes ggml would abort on, with typed errors, and a freed context refuses use", () => {
  const s = setup(41);
  try {
    const bad = s.ctx.tensor(TensorType.F32, [k + 1, n]);
    assert.throws(() => s.ctx.mulMat(s.w, bad), (e: Error & { code?: string }) => e.name === "GgmlShapeError" && /inner dimensions differ/.test(e.message));
    assert.throws(() => s.ctx.mulMat(s.ctx.transpose(s.w), s.ctx.tensor(TensorType.F32, [m, n])), /must not be transposed/);
    assert.throws(() => s.ctx.tensor(TensorType.F32, [0]), /positive integers/);
    assert.throws(() => s.ctx.tensor(TensorType.Q8_0, [33]), /block size/);
    assert.throws(() => s.ctx.copy(s.w, s.x), /different element counts/);
    const tiny = new GgmlContext(s.ctx.lib, { tensors: 1 });
    tiny.tensor(TensorType.F32, [4]);
    assert.throws(() => tiny.tensor(TensorType.F32, [4]), (e: Error & { code?: string }) => e.code === "ERR_GGML_CONTEXT_FULL");
    tiny.dispose();
    assert.throws(() => tiny.tensor(TensorType.F32, [4]));
  } finally {
    s.dispose();
  }
}, { skip: llamaUnavailable });
