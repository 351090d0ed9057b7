// CUDA graph checks shared by the CPU suite (fake libcudart) and the GPU suite (real CUDA):
// captured work runs only when launched, in the order it was queued, on whichever stream the
// graph is launched on, reading its buffers' contents at launch; and a call the capture forbids
// fails inside the capture with a CudaError that says so, leaving the stream usable.
import assert from "node:assert/strict";
import { type CudaContext, CudaError, CudaGraph } from "../../src/cuda/index.ts";
import { firstDifference, randomBytes } from "./random.ts";

function assertBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  const at = firstDifference(actual, expected);
  assert.equal(at, -1, `${what}: first difference at byte ${at} of ${expected.byteLength}`);
}

/**
 * Captures "fill dst with 0x5a, then copy src's first half over dst's first half": nothing changes
 * at capture; each launch (on the capture stream, then on another) leaves dst = src's first half
 * as src holds it at that launch, then 0x5a (the copy ran after the fill).
 */
export function checkGraphReplay(context: CudaContext, byteLength = 4096): void {
  using stream = context.createStream({ nonBlocking: true });
  using other = context.createStream({ nonBlocking: true });
  using src = context.alloc(byteLength);
  using dst = context.alloc(byteLength);
  const half = byteLength / 2;
  const expected = (data: Uint8Array) => Uint8Array.from({ length: byteLength }, (_, i) => (i < half ? data[i]! : 0x5a));
  let data = randomBytes(byteLength);
  src.write(data);
  dst.fill(0);
  using graph = CudaGraph.capture(stream, () => {
    dst.fill(0x5a, { stream });
    dst.copyFrom(src, { stream, byteLength: half });
  });
  stream.synchronize();
  assertBytes(dst.read(), new Uint8Array(byteLength), "after the capture, before any launch");
  graph.launch();
  stream.synchronize();
  assertBytes(dst.read(), expected(data), "first launch");
  data = randomBytes(byteLength);
  src.write(data);
  dst.fill(0);
  graph.launch(other);
  other.synchronize();
  assertBytes(dst.read(), expected(data), "a launch on another stream after src changed");
  assert.equal(graph.stream, stream);
}

/**
 * A synchronize of the capturing stream inside the capture: CUDA refuses it
 * (cudaErrorStreamCaptureUnsupported) and gpuffi says it happened inside CudaGraph.capture,
 * keeping CUDA's error as the cause. The capture is over: work on the stream runs again, and a
 * new capture on it succeeds.
 */
export function checkCaptureRefusesSync(context: CudaContext): void {
  using stream = context.createStream({ nonBlocking: true });
  using buffer = context.alloc(64);
  assert.throws(() => CudaGraph.capture(stream, () => {
    buffer.fill(1, { stream });
    stream.synchronize();
  }), (e: unknown) => {
    assert.ok(e instanceof CudaError, String(e));
    assert.equal(e.status, 900);
    assert.equal(e.call, "cudaStreamSynchronize");
    assert.match(e.message, /cudaStreamSynchronize failed: cudaErrorStreamCaptureUnsupported \(900\).*cudaStreamSynchronize was called inside CudaGraph\.capture: while a stream captures, CUDA refuses calls that wait for it/);
    assert.ok(e.cause instanceof CudaError && e.cause.status === 900);
    return true;
  });
  buffer.fill(2, { stream });
  stream.synchronize();
  assertBytes(buffer.read(), new Uint8Array(64).fill(2), "a fill after the failed capture");
  using graph = CudaGraph.capture(stream, () => buffer.fill(3, { stream }));
  graph.launch();
  stream.synchronize();
  assertBytes(buffer.read(), new Uint8Array(64).fill(3), "a capture after the failed one");
}
