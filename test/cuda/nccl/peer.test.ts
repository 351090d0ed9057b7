// Peer access: on the host-memory libcudart (with the peer calls faked on top: every pair of
// different devices can map each other), then on real GPUs, where one H100 answers false for
// itself and copies to itself, and two or more enable, copy and disable between devices.
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { type Pointer, nativeView } from "../../../src/ffi/index.ts";
import {
  CudaArgumentError,
  CudaContext,
  CudaError,
  CudaRuntime,
  canAccessPeer,
  copyPeer,
  disablePeerAccess,
  enablePeerAccess,
  formatPeerTopology,
  peerTopology,
} from "../../../src/cuda/index.ts";
import { fakeCudart } from "../fake-cudart.ts";
import { probeGpu } from "../gpu-probe.ts";
import { firstDifference, randomBytes } from "../random.ts";

const gpu = probeGpu();

/** The fake libcudart of `devices` devices plus the four peer calls; `failNext` fails them too. */
function fakeWithPeers(devices = 3) {
  const fake = fakeCudart({ devices });
  const enabled = new Set<number>();
  const peerCalls: { name: string; args: unknown[] }[] = [];
  const peer: Record<string, (...args: never[]) => number> = {
    cudaDeviceCanAccessPeer: (out: Int32Array, device: number, peerDevice: number) => ((out[0] = device === peerDevice ? 0 : 1), 0),
    // The fake does not track the current device; one context enables per test.
    cudaDeviceEnablePeerAccess: (peerDevice: number) => (enabled.has(peerDevice) ? 704 : (enabled.add(peerDevice), 0)),
    cudaDeviceDisablePeerAccess: (peerDevice: number) => (enabled.delete(peerDevice) ? 0 : 705),
    cudaMemcpyPeerAsync: (dst: Pointer, _dd: number, src: Pointer, _sd: number, n: number) => (new Uint8Array(nativeView(dst, n)).set(new Uint8Array(nativeView(src, n))), 0),
  };
  const symbols = new Proxy(fake.runtime.api.symbols, {
    get: (target, name: string) => {
      const fn = peer[name];
      if (!fn) return target[name as keyof typeof target];
      return (...args: never[]) => {
        peerCalls.push({ name, args });
        fake.calls.push(name);
        const failure = fake.failNext.get(name);
        if (failure !== undefined) return fake.failNext.delete(name), failure;
        return fn(...args);
      };
    },
  });
  const runtime = new CudaRuntime({ ...fake.runtime.api, symbols });
  return { fake, runtime, peerCalls, enabled };
}

test("canAccessPeer asks CUDA for the pair and checks the ordinal; a device and itself is false", () => {
  const { runtime, peerCalls } = fakeWithPeers();
  using context = CudaContext.create({ runtime });
  using other = CudaContext.create({ runtime, device: 2 });
  assert.equal(canAccessPeer(context, 1), true);
  assert.equal(canAccessPeer(context, other), true);
  assert.equal(canAccessPeer(context, 0), false);
  assert.deepEqual(peerCalls.map((c) => c.args.slice(1)), [[0, 1], [0, 2], [0, 0]]);
  assert.throws(() => canAccessPeer(context, 3), /device 3 does not exist: this process sees 3 devices \(0–2\)/);
  assert.throws(() => canAccessPeer(context, "1" as never), CudaArgumentError);
  assert.equal(peerCalls.length, 3);
});

test("enable and disable are idempotent, refuse the device itself, and report real failures", () => {
  const { fake, runtime, peerCalls, enabled } = fakeWithPeers();
  using context = CudaContext.create({ runtime });
  enablePeerAccess(context, 1);
  enablePeerAccess(context, 1);
  assert.deepEqual([...enabled], [1]);
  assert.equal(fake.calls.filter((c) => c === "cudaGetLastError").length, 1, "the already-enabled error is cleared");
  assert.throws(() => enablePeerAccess(context, 0), /device 0 is its own peer/);
  assert.throws(() => disablePeerAccess(context, context), /its own peer/);
  disablePeerAccess(context, 1);
  disablePeerAccess(context, 1);
  assert.deepEqual([...enabled], []);
  fake.failNext.set("cudaDeviceEnablePeerAccess", 217);
  assert.throws(() => enablePeerAccess(context, 2), (e: unknown) => e instanceof CudaError && e.status === 217 && /device 0 → peer 2/.test(e.message));
  assert.deepEqual(peerCalls.map((c) => c.name), ["cudaDeviceEnablePeerAccess", "cudaDeviceEnablePeerAccess", "cudaDeviceDisablePeerAccess", "cudaDeviceDisablePeerAccess", "cudaDeviceEnablePeerAccess"]);
});

test("copyPeer copies between devices with ranges and streams checked first", () => {
  const { runtime, peerCalls } = fakeWithPeers();
  using a = CudaContext.create({ runtime });
  using b = CudaContext.create({ runtime, device: 1 });
  using c = CudaContext.create({ runtime, device: 2 });
  const src = a.alloc(64);
  const dst = b.alloc(64);
  const data = randomBytes(64);
  src.write(data);
  copyPeer(dst, src);
  assert.equal(firstDifference(dst.read(), data), -1);
  assert.deepEqual(peerCalls.at(-1)!.args, [dst.ptr, 1, src.ptr, 0, 64, 0]);
  const stream = a.createStream();
  copyPeer(dst, src, { srcOffset: 8, dstOffset: 16, byteLength: 32, stream });
  assert.deepEqual(peerCalls.at(-1)!.args, [dst.ptr + 16, 1, src.ptr + 8, 0, 32, stream.handle]);
  const before = peerCalls.length;
  assert.throws(() => copyPeer(dst, src, { byteLength: 65 }), /copyPeer \(source\): bytes \[0, 65\) are out of range/);
  assert.throws(() => copyPeer(dst, src, { dstOffset: 8 }), /copyPeer \(destination\)/);
  assert.throws(() => copyPeer(dst, src, { stream: c.createStream() }), /the stream belongs to device 2, the copy is from device 0 to 1/);
  assert.throws(() => copyPeer(dst, a.allocPinned(64)), /src must be device memory/);
  assert.equal(peerCalls.length, before);
});

test("peerTopology is the matrix of every pair; the text marks P2P and the diagonal", () => {
  const { runtime } = fakeWithPeers();
  using context = CudaContext.create({ runtime });
  const topology = peerTopology(context);
  assert.equal(topology.deviceCount, 3);
  assert.deepEqual(topology.access, [[false, true, true], [true, false, true], [true, true, false]]);
  assert.deepEqual(peerTopology(runtime), topology, "from the runtime alone, without a context");
  assert.equal(formatPeerTopology(topology), ["     GPU0 GPU1 GPU2", "GPU0 X    P2P  P2P", "GPU1 P2P  X    P2P", "GPU2 P2P  P2P  X"].join("\n"));
});

test("one GPU: CUDA answers false for a device and itself; a peer copy to itself works", async () => {
  using context = CudaContext.create();
  assert.equal(canAccessPeer(context, context.device), false);
  const topology = peerTopology(context);
  assert.equal(topology.deviceCount, gpu.deviceCount);
  topology.access.forEach((row, i) => assert.equal(row[i], false));
  assert.throws(() => enablePeerAccess(context, context.device), CudaArgumentError);
  using stream = context.createStream();
  using src = context.alloc(8 << 20);
  using dst = context.alloc(8 << 20);
  const data = randomBytes(8 << 20);
  src.write(data);
  copyPeer(dst, src, { stream });
  await stream.synchronized();
  assert.equal(firstDifference(dst.read(), data), -1);
}, { skip: gpu.reason });

test("two GPUs: enable, copy over the peer mapping both ways, disable", async () => {
  using a = CudaContext.create({ device: 0 });
  using b = CudaContext.create({ device: 1 });
  const access = canAccessPeer(a, b);
  assert.equal(access, peerTopology(a).access[0]![1]);
  if (access) {
    enablePeerAccess(a, b);
    enablePeerAccess(b, a);
  }
  using onA = a.alloc(64 << 20);
  using onB = b.alloc(64 << 20);
  const data = randomBytes(64 << 20);
  onA.write(data);
  using stream = b.createStream();
  copyPeer(onB, onA, { stream });
  await stream.synchronized();
  assert.equal(firstDifference(onB.read(), data), -1);
  onA.fill(0);
  copyPeer(onA, onB);
  assert.equal(firstDifference(onA.read(), data), -1);
  if (access) {
    disablePeerAccess(a, b);
    disablePeerAccess(b, a);
  }
}, { skip: gpu.reason ?? (gpu.deviceCount < 2 ? `needs 2 GPUs (this machine has ${gpu.deviceCount})` : undefined) });
