// The TCP rendezvous that shares rank 0's NCCL unique id: several ranks in one process and as
// separate processes on 127.0.0.1, retries until rank 0 is up, timeouts on both sides, peers of
// the wrong version or none at all, refused ranks, and a port already in use.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { type Socket, createConnection, createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { test } from "../../harness.ts";
import { RendezvousError, RendezvousServer, fetchUniqueId, rendezvous } from "../../../src/cuda/index.ts";
import { freePort, runtimeCommand } from "./rendezvous-helpers.ts";

const host = "127.0.0.1";
const id = Uint8Array.from({ length: 128 }, (_, i) => (i * 7 + 3) & 0xff);

const failsWith = (reason: string, pattern: RegExp) => (e: unknown) => {
  assert.ok(e instanceof RendezvousError, String(e));
  assert.equal(e.reason, reason, e.message);
  assert.match(e.message, pattern);
  return true;
};

/** Sends raw bytes to host:port and resolves with everything the peer sent back before closing. */
function rawExchange(port: number, bytes: Uint8Array): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const socket: Socket = createConnection({ host, port }, () => socket.write(bytes));
    const chunks: Uint8Array[] = [];
    socket.on("data", (chunk: Uint8Array) => chunks.push(chunk));
    socket.on("error", reject);
    socket.on("close", () => resolve(Uint8Array.from(chunks.flatMap((c) => Array.from(c)))));
  });
}

/** A hello frame as rendezvous.ts writes it, with a chosen protocol version. */
function hello(version: number, rank: number, nranks: number): Uint8Array {
  const bytes = new Uint8Array(20);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, 16);
  view.setUint32(4, 0x47504652);
  view.setUint16(8, version);
  view.setUint8(10, 1);
  view.setUint32(12, rank);
  view.setUint32(16, nranks);
  return bytes;
}

test("rank 0 serves the id to three concurrent ranks in one process, then closes", async () => {
  const server = await RendezvousServer.listen(id, { host, port: 0, nranks: 4, timeoutMs: 10_000 });
  assert.ok(server.port > 0);
  const ids = await Promise.all([3, 1, 2].map((rank) => fetchUniqueId({ host, port: server.port, rank, nranks: 4, timeoutMs: 10_000 })));
  await server.done;
  for (const got of ids) assert.deepEqual(got, id);
  assert.deepEqual(server.joined, [1, 2, 3]);
  await assert.rejects(fetchUniqueId({ host, port: server.port, rank: 1, nranks: 4, timeoutMs: 300 }), failsWith("timeout", /could not reach rank 0/), "closed after the last rank");
});

test("ranks that start before rank 0 retry until it listens; rendezvous() gives every rank the same id", async () => {
  const port = await freePort();
  const early = fetchUniqueId({ host, port, rank: 1, nranks: 2, timeoutMs: 10_000 });
  await new Promise((resolve) => setTimeout(resolve, 300));
  const [zero, one] = await Promise.all([rendezvous({ host, port, rank: 0, nranks: 2, makeId: () => id, timeoutMs: 10_000 }), early]);
  assert.deepEqual(zero, id);
  assert.deepEqual(one, id);
  assert.deepEqual(await rendezvous({ host, port: 0, rank: 0, nranks: 1, makeId: () => id }), id, "one rank needs nobody");
});

test("ranks as separate processes of this runtime receive the id", async () => {
  const server = await RendezvousServer.listen(id, { host, port: 0, nranks: 4, timeoutMs: 60_000 });
  const script = fileURLToPath(new URL("./rendezvous-child.ts", import.meta.url));
  const root = fileURLToPath(new URL("../../..", import.meta.url));
  const outputs = await Promise.all([1, 2, 3].map((rank) => new Promise<string>((resolve, reject) => {
    const [command, args] = runtimeCommand(script);
    const child = spawn(command, [...args, String(server.port), String(rank), "4"], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
    child.on("error", reject);
    child.on("close", () => resolve(out.trim()));
  })));
  await server.done;
  const hex = Array.from(id, (b) => b.toString(16).padStart(2, "0")).join("");
  for (const output of outputs) assert.equal(output, `id ${hex}`);
}, { timeout: 90_000 });

test("rank 0 times out naming the ranks that never came", async () => {
  const server = await RendezvousServer.listen(id, { host, port: 0, nranks: 3, timeoutMs: 400 });
  await fetchUniqueId({ host, port: server.port, rank: 1, nranks: 3 });
  await assert.rejects(server.done, failsWith("timeout", /rank\(s\) 2 of 3 did not join within 400 ms/));
});

test("a rank with no rank 0 to reach times out with the address and the last error", async () => {
  const port = await freePort();
  await assert.rejects(fetchUniqueId({ host, port, rank: 1, nranks: 2, timeoutMs: 300 }), failsWith("timeout", new RegExp(`rank 1 could not reach rank 0 at 127\\.0\\.0\\.1:${port} within 300 ms \\(last error: .*ECONNREFUSED`)));
});

test("peers of another protocol version or sending garbage are turned away; real ranks still join", async () => {
  const server = await RendezvousServer.listen(id, { host, port: 0, nranks: 2, timeoutMs: 10_000 });
  const reply = await rawExchange(server.port, hello(99, 1, 2));
  assert.match(new TextDecoder().decode(reply.subarray(12)), /rank 0 speaks rendezvous protocol version 1, this rank 99/);
  assert.equal(new DataView(reply.buffer).getUint8(10), 3, "an error frame");
  assert.equal((await rawExchange(server.port, new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))).byteLength, 0, "garbage: closed without a reply");
  assert.equal((await rawExchange(server.port, Uint8Array.of(0xff, 0xff, 0xff, 0xff, 1, 2, 3))).byteLength, 0, "a huge length prefix: closed");
  assert.deepEqual(await fetchUniqueId({ host, port: server.port, rank: 1, nranks: 2 }), id);
  await server.done;
});

test("a rank refuses a server that is not a gpuffi rendezvous", async () => {
  const garbage = createServer((socket) => socket.end("SSH-2.0-OpenSSH_9.6\r\n"));
  await new Promise<void>((resolve) => garbage.listen(0, host, resolve));
  const port = (garbage.address() as { port: number }).port;
  try {
    await assert.rejects(fetchUniqueId({ host, port, rank: 1, nranks: 2, timeoutMs: 5000 }), failsWith("protocol", /is not a gpuffi rendezvous server/));
  } finally {
    garbage.close();
  }
});

test("rank 0 refuses wrong rank counts, ranks out of range and duplicates with a reason", async () => {
  const server = await RendezvousServer.listen(id, { host, port: 0, nranks: 3, timeoutMs: 10_000 });
  const port = server.port;
  await assert.rejects(fetchUniqueId({ host, port, rank: 1, nranks: 4 }), failsWith("rejected", /rank 1 expects 4 ranks, but rank 0 was started with 3/));
  await fetchUniqueId({ host, port, rank: 2, nranks: 3 });
  await assert.rejects(fetchUniqueId({ host, port, rank: 2, nranks: 3 }), failsWith("rejected", /rank 2 has already joined/));
  await assert.rejects(fetchUniqueId({ host, port, rank: 0, nranks: 3 }), failsWith("rejected", /rank must be in \[1, 3\) \(rank 0 serves the id\)/));
  await assert.rejects(fetchUniqueId({ host, port: 0, rank: 1, nranks: 3 }), failsWith("rejected", /port 0 is for rank 0 only/));
  await assert.rejects(fetchUniqueId({ host: "", port, rank: 1, nranks: 3 }), failsWith("rejected", /host must be a non-empty string/));
  await fetchUniqueId({ host, port, rank: 1, nranks: 3 });
  await server.done;
});

test("a port already in use is reported as such", async () => {
  const first = await RendezvousServer.listen(id, { host, port: 0, nranks: 2, timeoutMs: 10_000 });
  await assert.rejects(RendezvousServer.listen(id, { host, port: first.port, nranks: 2 }), failsWith("address-in-use", new RegExp(`127\\.0\\.0\\.1:${first.port} is already in use`)));
  first.close();
  await assert.rejects(first.done, failsWith("rejected", /closed before every rank joined/));
  assert.throws(() => RendezvousServer.listen(new Uint8Array(16), { host, port: 0, nranks: 2 }), failsWith("rejected", /must be 128 bytes/));
});
