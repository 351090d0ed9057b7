// CUDA graphs against the fake libcudart, whose capture records a stream's work instead of running
// it, replays it at cudaGraphLaunch and refuses what CUDA refuses during capture: the shared replay
// and refusal scenarios, launch counts in immediate and deferred mode, every argument and state
// error, the capture modes, and disposal with the graph and with the context.
import assert from "node:assert/strict";
import { test } from "../harness.ts";
import { DisposedError } from "../../src/ffi/index.ts";
import { CudaArgumentError, CudaContext, CudaError, CudaGraph, CudaStateError, type CudaStream } from "../../src/cuda/index.ts";
import { fakeCudart } from "./fake-cudart.ts";
import { checkCaptureRefusesSync, checkGraphReplay } from "./graph-scenarios.ts";

function setup(options?: Parameters<typeof fakeCudart>[0]) {
  const fake = fakeCudart(options);
  const context = CudaContext.create({ runtime: fake.runtime });
  return { fake, context, [Symbol.dispose]: () => context.dispose() };
}

/** Queues a host function as a stream's work on the fake, as a kernel launch would be: it counts its runs. */
function counter(fake: ReturnType<typeof fakeCudart>, stream: CudaStream) {
  const state = { runs: 0, queue: () => assert.equal(fake.enqueue(stream.handle, () => void state.runs++), 0) };
  return state;
}

test("a captured fill and copy run only when launched, in order, on any stream, reading the source at launch", () => {
  using env = setup();
  checkGraphReplay(env.context);
  assert.equal(env.fake.graphs.size, 0, "the captured graph is destroyed once instantiated");
  assert.equal(env.fake.graphExecs.size, 0, "the executable graph is destroyed with the CudaGraph");
});

test("a launch is one cudaGraphLaunch; N launches run the work N times, queued as N operations in deferred mode", () => {
  for (const deferred of [false, true]) {
    using env = setup({ deferred });
    using stream = env.context.createStream();
    const work = counter(env.fake, stream);
    using graph = CudaGraph.capture(stream, () => {
      work.queue();
      work.queue();
    });
    assert.equal(work.runs, 0, "nothing runs at capture");
    const calls = env.fake.calls.length;
    for (let i = 0; i < 5; i++) graph.launch();
    assert.deepEqual(env.fake.calls.slice(calls), Array(5).fill("cudaGraphLaunch"));
    assert.equal(work.runs, deferred ? 0 : 10);
    assert.equal(env.fake.queuedOperations, deferred ? 5 : 0);
    stream.synchronize();
    assert.equal(work.runs, 10);
  }
});

test("capture arguments are checked before any C call", () => {
  using env = setup();
  using stream = env.context.createStream();
  using buffer = env.context.alloc(16);
  const calls = env.fake.calls.length;
  const refused = (args: unknown[], message: RegExp) =>
    assert.throws(() => (CudaGraph.capture as (...a: unknown[]) => CudaGraph)(...args), (e: Error) => e instanceof CudaArgumentError && message.test(e.message));
  for (const legacy of [undefined, null, 0]) refused([legacy, () => {}], /CudaGraph\.capture: expected a CudaStream, got .*CUDA cannot capture the legacy default stream/);
  refused([stream, "fn"], /expected a function that queues the work to capture, got string/);
  refused([stream, () => {}, { mode: "loose" }], /mode must be "global", "threadLocal" or "relaxed", got "loose"/);
  refused([stream, () => {}, { uses: buffer }], /uses must be an array of gpuffi resources/);
  refused([stream, () => {}, { uses: [buffer, {}] }], /uses must be an array of gpuffi resources/);
  assert.deepEqual(env.fake.calls.slice(calls), []);
});

test("a call the capture forbids fails inside it with a CudaError naming the capture; the stream is usable afterwards", () => {
  using env = setup();
  checkCaptureRefusesSync(env.context);
  using stream = env.context.createStream();
  using buffer = env.context.alloc(16);
  const refused = (fn: () => void, status: number, call: string) =>
    assert.throws(() => CudaGraph.capture(stream, fn), (e: unknown) => e instanceof CudaError && e.status === status && e.call === call && /inside CudaGraph\.capture/.test(e.message));
  refused(() => buffer.read(undefined, { stream }), 900, "cudaMemcpyAsync");
  refused(() => stream.query(), 900, "cudaStreamQuery");
  refused(() => env.context.synchronize(), 900, "cudaDeviceSynchronize");
  // The legacy default stream may not be used while a blocking stream captures.
  refused(() => buffer.fill(1), 906, "cudaMemsetAsync");
  assert.equal(env.fake.graphs.size + env.fake.graphExecs.size, 0, "nothing kept");
  const end = env.fake.calls.lastIndexOf("cudaStreamEndCapture");
  assert.equal(env.fake.calls[end + 1], "cudaGetLastError", "the capture's errors are not left as CUDA's last error");
});

test("a forbidden call whose error fn swallows invalidates the capture: cudaStreamEndCapture fails, nothing is kept", () => {
  using env = setup();
  using stream = env.context.createStream();
  using buffer = env.context.alloc(16);
  assert.throws(() => CudaGraph.capture(stream, () => {
    buffer.fill(1, { stream });
    assert.throws(() => stream.synchronize(), CudaError);
  }), (e: unknown) => e instanceof CudaError && e.errorName === "cudaErrorStreamCaptureInvalidated" && e.call === "cudaStreamEndCapture" && /a call inside fn invalidated the capture/.test(e.message));
  assert.equal(env.fake.graphs.size + env.fake.graphExecs.size, 0);
});

test("capture modes: allocating is forbidden in \"global\" and \"threadLocal\", allowed in \"relaxed\"; a non-blocking stream leaves the legacy stream free", () => {
  using env = setup();
  using blocking = env.context.createStream();
  using nonBlocking = env.context.createStream({ nonBlocking: true });
  for (const mode of ["global", "threadLocal"] as const) {
    assert.throws(() => CudaGraph.capture(blocking, () => env.context.alloc(16), { mode }), (e: unknown) => e instanceof CudaError && e.status === 900 && e.call === "cudaMalloc");
  }
  const allocated: { dispose(): void }[] = [];
  using relaxed = CudaGraph.capture(blocking, () => void allocated.push(env.context.alloc(16)), { mode: "relaxed" });
  assert.equal(allocated.length, 1);
  allocated[0]!.dispose();
  using buffer = env.context.alloc(16);
  using graph = CudaGraph.capture(nonBlocking, () => {
    buffer.fill(7);
    buffer.fill(9, { stream: nonBlocking });
  });
  assert.deepEqual([...buffer.read()], Array(16).fill(7), "the legacy stream's fill ran at once, not captured");
  graph.launch();
  assert.deepEqual([...buffer.read()], Array(16).fill(9));
  relaxed.launch();
});

test("if fn throws, the capture ends, nothing is kept and the same error is rethrown; async functions are refused", () => {
  using env = setup();
  using stream = env.context.createStream();
  using buffer = env.context.alloc(16);
  const failure = new Error("not today");
  assert.throws(() => CudaGraph.capture(stream, () => {
    buffer.fill(1, { stream });
    throw failure;
  }), (e: unknown) => e === failure);
  assert.throws(() => CudaGraph.capture(stream, async () => buffer.fill(1, { stream })), /fn returned a promise, but the capture ends when fn returns/);
  assert.throws(() => CudaGraph.capture(stream, async () => stream.synchronize()), CudaArgumentError, "refused, its rejection handled");
  assert.equal(env.fake.graphs.size + env.fake.graphExecs.size, 0);
  assert.deepEqual([...buffer.read()], Array(16).fill(0), "nothing captured ran");
  using graph = CudaGraph.capture(stream, () => buffer.fill(2, { stream }));
  graph.launch();
  assert.deepEqual([...buffer.read()], Array(16).fill(2), "the stream captures again");
});

test("failed CUDA calls of the capture are CudaErrors and free what was made; launchBlocking contexts cannot capture", () => {
  using env = setup();
  using stream = env.context.createStream();
  env.fake.failNext.set("cudaStreamBeginCapture", 1);
  let ran = false;
  assert.throws(() => CudaGraph.capture(stream, () => void (ran = true)), (e: unknown) => e instanceof CudaError && e.call === "cudaStreamBeginCapture" && /mode "global"/.test(e.message));
  assert.equal(ran, false);
  env.fake.failNext.set("cudaGraphInstantiateWithFlags", 2);
  assert.throws(() => CudaGraph.capture(stream, () => {}), (e: unknown) => e instanceof CudaError && e.call === "cudaGraphInstantiateWithFlags");
  assert.equal(env.fake.graphs.size + env.fake.graphExecs.size, 0, "the captured graph destroyed, no executable made");

  const fake = fakeCudart();
  using context = CudaContext.create({ runtime: fake.runtime, launchBlocking: true });
  using blocking = context.createStream();
  assert.throws(() => CudaGraph.capture(blocking, () => {}), (e: unknown) => e instanceof CudaStateError && /launchBlocking, which waits for the stream after every operation/.test(e.message));
  assert.ok(!fake.calls.includes("cudaStreamBeginCapture"));
});

test("launch: on a stream of the graph's device only; refused once a resource in `uses` is disposed", () => {
  using env = setup();
  using stream = env.context.createStream();
  const buffer = env.context.alloc(16);
  using graph = CudaGraph.capture(stream, () => buffer.fill(1, { stream }), { uses: [buffer] });
  using gpu1 = CudaContext.create({ runtime: env.fake.runtime, device: 1 });
  using foreign = gpu1.createStream();
  assert.throws(() => graph.launch(foreign), (e: Error) => e instanceof CudaArgumentError && /CudaGraph\.launch: the stream belongs to device 1, but the operation is on device 0/.test(e.message));
  assert.throws(() => graph.launch(null as never), (e: Error) => e instanceof CudaArgumentError && /expected a CudaStream \(or nothing, for the capture stream\), got null/.test(e.message));
  const launches = () => env.fake.calls.filter((call) => call === "cudaGraphLaunch").length;
  buffer.dispose();
  assert.throws(() => graph.launch(), (e: Error) => e instanceof CudaStateError && /the graph's work uses a DeviceBuffer that is disposed; capture the work again on live memory/.test(e.message));
  assert.throws(() => CudaGraph.capture(stream, () => {}, { uses: [buffer] }), /CudaGraph\.capture: the graph's work uses a DeviceBuffer that is disposed/);
  assert.equal(launches(), 0);
});

test("disposal: the executable graph is destroyed with the CudaGraph, or by its context before its memory and streams; disposed graphs throw", () => {
  const { fake, context } = setup();
  const stream = context.createStream();
  const other = context.createStream();
  const buffer = context.alloc(16);
  const graph = CudaGraph.capture(stream, () => buffer.fill(1, { stream }));
  const second = CudaGraph.capture(stream, () => buffer.fill(2, { stream }));
  graph.dispose();
  assert.equal(fake.graphExecs.size, 1);
  assert.throws(() => graph.launch(), DisposedError);
  assert.throws(() => graph.dispose(), DisposedError);
  stream.dispose();
  assert.throws(() => second.launch(), DisposedError, "the capture stream is gone");
  second.launch(other);
  assert.deepEqual([...buffer.read()], Array(16).fill(2));
  const calls = fake.calls.length;
  context.dispose();
  const order = fake.calls.slice(calls);
  assert.ok(order.indexOf("cudaGraphExecDestroy") < order.indexOf("cudaFree") && order.indexOf("cudaFree") < order.indexOf("cudaStreamDestroy"), order.join(", "));
  assert.equal(fake.graphExecs.size, 0);
  assert.ok(second.disposed);
  assert.throws(() => second.launch(other), DisposedError);
});
