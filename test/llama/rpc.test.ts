// llama.cpp's RPC backend. Everywhere: endpoint checks, ggml's handshake against fake servers
// (right, other versions, not RPC, silent, absent, no devices), the refusal of a libllama
// without RPC, and starting ggml-rpc-server. With a libllama built by
// `scripts/build-llama.sh --rpc` (GPUFFI_LLAMA_DIR) and its ggml-rpc-server: a tiny model run
// through one server on 127.0.0.1 against the same model run locally.
import assert from "node:assert/strict";
import { type Socket, createServer } from "node:net";
import { test } from "../harness.ts";
import { Llama, LlamaModel, type ModelLoadOptions, RpcError, RpcServerProcess, parseRpcEndpoint, parseRpcEndpoints, probeRpcServer, rpcDevices, rpcServerExecutable } from "../../src/llama/index.ts";
import { freePort } from "../cuda/nccl/rendezvous-helpers.ts";
import { llamaUnavailable, tinyModel } from "./fixtures.ts";
import { assertClose, contextOptions, modelLogits } from "./numerics.ts";

const failsWith = (reason: string, pattern: RegExp) => (e: unknown) => {
  assert.ok(e instanceof RpcError, String(e));
  assert.equal(e.reason, reason, e.message);
  assert.match(e.message, pattern);
  return true;
};

/** Why the loopback tests cannot run here, or undefined. */
const rpcUnavailable: string | undefined = (() => {
  if (llamaUnavailable) return llamaUnavailable;
  if (!Llama.shared().supportsRpc) return `no RPC backend in ${Llama.shared().path}: scripts/build-llama.sh --rpc --out DIR, then GPUFFI_LLAMA_DIR=DIR`;
  try {
    rpcServerExecutable();
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
})();

// ----- a fake ggml RPC server ---------------------------------------------------------------

interface FakeServer {
  readonly endpoint: string;
  /** Bytes each connection sent. */
  readonly received: Uint8Array[];
  close(): Promise<void>;
}

/** Listens on 127.0.0.1 and lets `answer` reply to each connection's first bytes. */
async function fakeServer(answer: (socket: Socket, received: Uint8Array) => void): Promise<FakeServer> {
  const received: Uint8Array[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    const index = received.push(new Uint8Array(0)) - 1;
    socket.on("error", () => {});
    socket.on("data", (chunk: Uint8Array) => {
      received[index] = new Uint8Array([...received[index]!, ...chunk]);
      answer(socket, received[index]!);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    endpoint: `127.0.0.1:${port}`,
    received,
    close: () => {
      sockets.forEach((s) => s.destroy());
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** An answer: [u64 LE size][body]. */
function message(body: number[]): Uint8Array {
  const bytes = new Uint8Array(8 + body.length);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(body.length), true);
  bytes.set(body, 8);
  return bytes;
}
const hello = (major: number, minor: number, patch: number) => message([major, minor, patch, 0, ...new Array(24).fill(0)]);
const deviceCount = (n: number) => message([n, 0, 0, 0]);
/** The probe's two requests: HELLO (9 + 24 bytes) and DEVICE_COUNT (9 bytes). */
const probeBytes = 9 + 24 + 9;

async function withFake<T>(answer: (socket: Socket, received: Uint8Array) => void, body: (fake: FakeServer) => Promise<T>): Promise<T> {
  const fake = await fakeServer(answer);
  try {
    return await body(fake);
  } finally {
    await fake.close();
  }
}

// ----- everywhere ---------------------------------------------------------------------------

test("RPC endpoints are host:port with an IPv4 address or host name and a port 1–65535", () => {
  assert.deepEqual(parseRpcEndpoint("127.0.0.1:50052"), { host: "127.0.0.1", port: 50052, endpoint: "127.0.0.1:50052" });
  assert.deepEqual(parseRpcEndpoint("gpu-box.lan:7"), { host: "gpu-box.lan", port: 7, endpoint: "gpu-box.lan:7" });
  assert.equal(parseRpcEndpoint("localhost:65535").port, 65535);
  const bad: [unknown, RegExp][] = [
    ["127.0.0.1", /has no port/],
    ["127.0.0.1:0", /port must be a whole number from 1 to 65535/],
    ["127.0.0.1:65536", /port must be/],
    ["127.0.0.1:5e4", /port must be/],
    ["127.0.0.1:", /port must be/],
    [":50052", /host must be/],
    [" 127.0.0.1:50052", /host must be/],
    ["host_name:1", /host must be/],
    ["[::1]:50052", /IPv6/],
    ["::1:50052", /IPv6/],
    [50052, /must be a "host:port" string/],
  ];
  for (const [value, pattern] of bad) assert.throws(() => parseRpcEndpoint(value), failsWith("argument", pattern), String(value));
  assert.equal(parseRpcEndpoints(["a:1", "b:1"]).length, 2);
  assert.throws(() => parseRpcEndpoints([]), failsWith("argument", /1 to 16 servers, got 0/));
  assert.throws(() => parseRpcEndpoints(Array.from({ length: 17 }, (_, i) => `h:${i + 1}`)), failsWith("argument", /got 17/));
  assert.throws(() => parseRpcEndpoints(["a:1", "a:01"]), failsWith("argument", /a:1 is listed twice/));
  assert.throws(() => parseRpcEndpoints("a:1"), failsWith("argument", /must be an array/));
});

test("the handshake sends ggml's HELLO (plain TCP) and DEVICE_COUNT, and reads the version and device count", async () => {
  await withFake((socket, got) => {
    if (got.byteLength === probeBytes) socket.write(new Uint8Array([...hello(7, 0, 0), ...deviceCount(3)]));
  }, async (fake) => {
    assert.deepEqual(await probeRpcServer(fake.endpoint), { endpoint: fake.endpoint, protocol: "7.0.0", devices: 3 });
    const sent = new DataView(fake.received[0]!.buffer);
    assert.deepEqual([sent.getUint8(0), sent.getBigUint64(1, true)], [14, 24n]);
    assert.ok(fake.received[0]!.subarray(9, 33).every((b) => b === 0), "no transport capabilities offered");
    assert.deepEqual([sent.getUint8(33), sent.getBigUint64(34, true)], [15, 0n]);
  });
  // An answer split into single bytes is put together.
  await withFake((socket, got) => {
    if (got.byteLength !== probeBytes) return;
    const answer = [...hello(7, 0, 5), ...deviceCount(1)];
    answer.forEach((byte, i) => setTimeout(() => socket.write(new Uint8Array([byte])), i));
  }, async (fake) => assert.equal((await probeRpcServer(fake.endpoint)).protocol, "7.0.5"));
});

test("the handshake refuses other versions, peers that are not RPC servers, silence, closed ports and servers without devices", async () => {
  const answers: [string, (socket: Socket) => void, RegExp][] = [
    ["version", (s) => s.write(hello(6, 0, 0)), /speaks protocol 6\.0\.0, this libllama 7\.0\.x/],
    ["version", (s) => s.write(hello(7, 1, 0)), /protocol 7\.1\.0/],
    ["version", (s) => s.write(message([3, 0, 0])), /protocol 3\.0\.0/],
    ["protocol", (s) => s.end("HTTP/1.1 400 Bad Request\r\n\r\n"), /not a ggml RPC server: its handshake answer is/],
    ["protocol", (s) => s.end(), /closed the connection after 0 bytes/],
    ["protocol", (s) => s.write(new Uint8Array([...hello(7, 0, 0), ...message([1])])), /device count answer is malformed/],
    ["no-devices", (s) => s.write(new Uint8Array([...hello(7, 0, 0), ...deviceCount(0)])), /exposes no device/],
  ];
  for (const [reason, answer, pattern] of answers) {
    await withFake((socket, got) => got.byteLength === probeBytes && answer(socket), async (fake) => {
      await assert.rejects(probeRpcServer(fake.endpoint, { timeoutMs: 5000 }), failsWith(reason, pattern));
    });
  }
  await withFake(() => {}, async (fake) => {
    await assert.rejects(probeRpcServer(fake.endpoint, { timeoutMs: 200 }), failsWith("timeout", /did not answer ggml's RPC handshake within 200 ms/));
  });
  await assert.rejects(probeRpcServer(`127.0.0.1:${await freePort()}`), failsWith("unreachable", /ECONNREFUSED.*is ggml-rpc-server running there/));
  await assert.rejects(probeRpcServer("127.0.0.1:1", { timeoutMs: -1 }), failsWith("argument", /timeoutMs must be a positive number/));
  await assert.rejects(probeRpcServer("nohost"), failsWith("argument", /has no port/));
});

test("a libllama without the RPC backend is refused before anything connects", async () => {
  await withFake(() => {}, async (fake) => {
    await assert.rejects(LlamaModel.load(tinyModel().path, { rpcServers: [fake.endpoint] }), failsWith("unsupported", /built without ggml's RPC backend.*build-llama\.sh --rpc/));
    await assert.rejects(rpcDevices([fake.endpoint]), failsWith("unsupported", /without ggml's RPC backend/));
    assert.equal(fake.received.length, 0, "no connection was made");
  });
}, { skip: llamaUnavailable ?? (Llama.shared().supportsRpc ? "this libllama has the RPC backend" : undefined) });

test("model options: a malformed server list or timeout is refused before anything connects", async () => {
  await assert.rejects(LlamaModel.load(tinyModel().path, { rpcServers: ["127.0.0.1"] }), failsWith("argument", /has no port/));
  await assert.rejects(LlamaModel.load(tinyModel().path, { rpcServers: [] }), failsWith("argument", /1 to 16 servers/));
  await assert.rejects(LlamaModel.load(tinyModel().path, { rpcServers: ["127.0.0.1:1"], rpcTimeoutMs: 0 }), failsWith("argument", /rpcServers: timeoutMs must be a positive number/));
}, { skip: llamaUnavailable });

test("RpcServerProcess: checked options, a missing executable, one that exits at once", async () => {
  const refused: [Parameters<typeof RpcServerProcess.start>[0], RegExp][] = [
    [{ path: "/bin/false", port: -1 }, /port must be a whole number from 0 to 65535/],
    [{ path: "/bin/false", port: 1.5 }, /port must be/],
    [{ path: "/bin/false", host: "::1" }, /host must be an IPv4 address or a host name/],
    [{ path: "/bin/false", threads: 0 }, /threads must be a whole number ≥ 1/],
    [{ path: "/bin/false", devices: [] }, /devices must be ggml device names/],
    [{ path: "/bin/false", devices: ["CUDA0,CPU"] }, /devices must be ggml device names/],
    [{ path: "/bin/false", timeoutMs: Number.NaN }, /timeoutMs must be a positive number/],
  ];
  for (const [options, pattern] of refused) await assert.rejects(RpcServerProcess.start(options), failsWith("argument", pattern), JSON.stringify(options));
  await assert.rejects(RpcServerProcess.start({ path: "/nonexistent/ggml-rpc-server" }), failsWith("server-not-found", /no ggml-rpc-server at \/nonexistent\/ggml-rpc-server: build it with scripts\/build-llama\.sh --rpc/));
  await assert.rejects(RpcServerProcess.start({ path: "/bin/false" }), failsWith("server-exit", /exited with 1 before answering on 127\.0\.0\.1:\d+/));
});

// ----- a real ggml-rpc-server on 127.0.0.1 ---------------------------------------------------

const logitsOf = (options: ModelLoadOptions) => modelLogits(tinyModel().path, options);

const maxAbs = (values: Float32Array) => values.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

test("through one ggml-rpc-server on 127.0.0.1 (its CPU device), the logits match the local CPU run", async () => {
  await using server = await RpcServerProcess.start({ devices: ["CPU"], threads: contextOptions.threads });
  const [device] = await rpcDevices([server.endpoint]);
  assert.equal(device?.description, server.endpoint);
  assert.match(device!.name, /^RPC\d+$/);
  assert.ok(device!.memoryTotal > 0, "the server reports its memory");
  const local = await logitsOf({ gpuLayers: 0 });
  // Every layer on the server's device (tensorSplit counts the servers' devices first).
  const remote = await logitsOf({ gpuLayers: "all", rpcServers: [server.endpoint], tensorSplit: [1] });
  assertClose(remote, local, 1e-5 * maxAbs(local), "RPC vs local");
}, { skip: rpcUnavailable, timeout: 120_000 });

test("models share a server's one connection; a server that is gone is an RpcError, not a process abort", async () => {
  await using server = await RpcServerProcess.start({ devices: ["CPU"], threads: contextOptions.threads });
  const options = { gpuLayers: "all", rpcServers: [server.endpoint], tensorSplit: [1], rpcTimeoutMs: 5000 } as const;
  // While the first model holds the connection the server serves no one else: the second load
  // must not wait for a handshake behind it.
  const [first, second] = await Promise.all([LlamaModel.load(tinyModel().path, options), LlamaModel.load(tinyModel().path, options)]);
  const third = await LlamaModel.load(tinyModel().path, options);
  [first, second, third].forEach((model) => model.dispose());
  // Every model is freed, so ggml has let go: the next load handshakes again.
  (await LlamaModel.load(tinyModel().path, options)).dispose();
  await server.stop();
  await assert.rejects(LlamaModel.load(tinyModel().path, options), failsWith("unreachable", new RegExp(`cannot connect to the RPC server ${server.endpoint}`)));
}, { skip: rpcUnavailable, timeout: 120_000 });

test("GPU: a CUDA device served over RPC gives the logits of the same device used locally", async () => {
  await using server = await RpcServerProcess.start({ devices: ["CUDA0"] });
  const local = await logitsOf({ gpuLayers: "all", splitMode: "none", mainGpu: 0 });
  const remote = await logitsOf({ gpuLayers: "all", rpcServers: [server.endpoint], tensorSplit: [1] });
  assertClose(remote, local, 1e-5 * maxAbs(local), "CUDA0 over RPC vs CUDA0");
}, { skip: rpcUnavailable ?? (Llama.shared().devices().some((d) => d.type === "gpu") ? undefined : "needs a CUDA build with RPC: scripts/build-llama.sh --cuda --rpc"), timeout: 120_000 });
