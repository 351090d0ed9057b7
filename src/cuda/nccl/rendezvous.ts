// The bootstrap of a multi-process NCCL communicator: rank 0 makes the unique id and serves it
// over TCP on host:port; every other rank connects (retrying until rank 0 is up), says who it is,
// receives the id and acknowledges it. One message each way, length-prefixed and versioned, so
// that a stray client or an old gpuffi gets a clear error instead of a wrong id. node:net, so the
// same code runs on Bun, Deno and Node.
import { type Server, type Socket, createConnection, createServer } from "node:net";
import { GpuffiError } from "../../ffi/index.ts";
import { ncclUniqueIdBytes } from "./nccl-library.ts";

/** Bumped whenever the messages change; both sides must agree. */
export const rendezvousVersion = 1;

const magic = 0x47504652; // "GPFR"
const kind = { hello: 1, id: 2, error: 3, ack: 4 } as const;
/** Every frame fits in this many bytes; a larger length prefix is garbage, not a message. */
const maxFrameBytes = 4096;
const headerBytes = 8;

export type RendezvousFailure = "timeout" | "address-in-use" | "protocol" | "rejected" | "network";

export class RendezvousError extends GpuffiError {
  override name = "RendezvousError";
  constructor(readonly reason: RendezvousFailure, message: string, options?: { cause?: unknown }) {
    super(`ERR_RENDEZVOUS_${reason.toUpperCase().replace(/-/g, "_")}`, message, options);
  }
}

export interface RendezvousOptions {
  /** Rank 0's address: the host it listens on and the others connect to (e.g. "10.0.0.1"). */
  readonly host: string;
  /** Rank 0's port; 0 on rank 0 picks a free one (see RendezvousServer.port). */
  readonly port: number;
  readonly rank: number;
  readonly nranks: number;
  /** Milliseconds until the whole rendezvous gives up (default 60 000). */
  readonly timeoutMs?: number;
  /** Rank 0 only: makes the id to share (ncclGetUniqueId). */
  readonly makeId?: () => Uint8Array;
}

export interface ServeOptions {
  readonly host: string;
  readonly port: number;
  readonly nranks: number;
  readonly timeoutMs?: number;
}

const defaultTimeoutMs = 60_000;
/** A connected peer that sends no complete hello within this long is dropped. */
const helloTimeoutMs = 10_000;

// ----- frames --------------------------------------------------------------------------------

/** A frame: [u32 BE length of the rest][u32 magic][u16 version][u8 kind][u8 0][body]. */
function frame(type: number, body: Uint8Array = new Uint8Array(0)): Uint8Array {
  const bytes = new Uint8Array(4 + headerBytes + body.byteLength);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, headerBytes + body.byteLength);
  view.setUint32(4, magic);
  view.setUint16(8, rendezvousVersion);
  view.setUint8(10, type);
  bytes.set(body, 12);
  return bytes;
}

function rankBody(rank: number, nranks: number): Uint8Array {
  const body = new Uint8Array(8);
  new DataView(body.buffer).setUint32(0, rank);
  new DataView(body.buffer).setUint32(4, nranks);
  return body;
}

interface Frame {
  readonly version: number;
  readonly kind: number;
  readonly body: Uint8Array;
}

/**
 * Accumulates a socket's bytes and yields its one frame. Throws RendezvousError("protocol") on a
 * length prefix that is not a gpuffi frame, so that a garbage peer costs at most 4 KiB of memory.
 */
class FrameReader {
  #buffered = new Uint8Array(0);

  push(chunk: Uint8Array): Frame | undefined {
    const joined = new Uint8Array(this.#buffered.byteLength + chunk.byteLength);
    joined.set(this.#buffered);
    joined.set(chunk, this.#buffered.byteLength);
    this.#buffered = joined;
    if (joined.byteLength < 4) return undefined;
    const view = new DataView(joined.buffer);
    const length = view.getUint32(0);
    if (length < headerBytes || length > maxFrameBytes) throw new RendezvousError("protocol", `not a gpuffi rendezvous message (length prefix ${length})`);
    if (joined.byteLength >= 8 && view.getUint32(4) !== magic) throw new RendezvousError("protocol", "not a gpuffi rendezvous message (bad magic)");
    if (joined.byteLength < 4 + length) return undefined;
    return { version: view.getUint16(8), kind: view.getUint8(10), body: joined.slice(12, 4 + length) };
  }
}

function checkRendezvousArgs(host: unknown, port: unknown, nranks: unknown, timeoutMs: unknown, what: string): void {
  if (typeof host !== "string" || host.length === 0) throw new RendezvousError("rejected", `${what}: host must be a non-empty string, got ${String(host)}`);
  if (typeof port !== "number" || !Number.isInteger(port) || port < 0 || port > 65535) throw new RendezvousError("rejected", `${what}: port must be a whole number in [0, 65535], got ${String(port)}`);
  if (typeof nranks !== "number" || !Number.isSafeInteger(nranks) || nranks < 1 || nranks > 0x7fffffff) throw new RendezvousError("rejected", `${what}: nranks must be a whole number ≥ 1, got ${String(nranks)}`);
  if (timeoutMs !== undefined && (typeof timeoutMs !== "number" || !(timeoutMs > 0))) throw new RendezvousError("rejected", `${what}: timeoutMs must be a positive number, got ${String(timeoutMs)}`);
}

// ----- rank 0 --------------------------------------------------------------------------------

/** Rank 0's side: serves one id to ranks 1 … nranks-1, each once, then closes. */
export class RendezvousServer {
  /** Resolves once every other rank acknowledged the id; rejects on timeout with the ranks still missing. */
  readonly done: Promise<void>;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #joined = new Set<number>();
  #finish!: (error?: Error) => void;

  private constructor(server: Server, readonly host: string, readonly port: number, readonly nranks: number, id: Uint8Array, timeoutMs: number) {
    this.#server = server;
    this.done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const missing = Array.from({ length: nranks - 1 }, (_, i) => i + 1).filter((rank) => !this.#joined.has(rank));
        this.#finish(new RendezvousError("timeout", `rendezvous on ${host}:${port}: rank(s) ${missing.join(", ")} of ${nranks} did not join within ${timeoutMs} ms`));
      }, timeoutMs);
      let finished = false;
      this.#finish = (error) => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        this.close();
        if (error) reject(error);
        else resolve();
      };
    });
    // A caller that only awaits `done` later must not see an unhandled rejection meanwhile.
    this.done.catch(() => {});
    server.on("connection", (socket) => this.#serve(socket, id));
    if (nranks === 1) this.#finish();
  }

  /** Listens on host:port. Port 0 picks a free port, readable as `.port`. */
  static listen(id: Uint8Array, options: ServeOptions): Promise<RendezvousServer> {
    const { host, port, nranks } = options;
    checkRendezvousArgs(host, port, nranks, options.timeoutMs, "RendezvousServer.listen");
    if (!(id instanceof Uint8Array) || id.byteLength !== ncclUniqueIdBytes) {
      throw new RendezvousError("rejected", `RendezvousServer.listen: the id must be ${ncclUniqueIdBytes} bytes (an NCCL unique id)`);
    }
    const server = createServer();
    return new Promise((resolve, reject) => {
      server.once("error", (error: NodeJS.ErrnoException) => {
        server.close();
        reject(error.code === "EADDRINUSE"
          ? new RendezvousError("address-in-use", `rendezvous: ${host}:${port} is already in use; pick another port for rank 0 (every rank must be given the same one)`, { cause: error })
          : new RendezvousError("network", `rendezvous: cannot listen on ${host}:${port}: ${error.message}`, { cause: error }));
      });
      server.listen(port, host, () => {
        const address = server.address();
        const bound = typeof address === "object" && address ? address.port : port;
        resolve(new RendezvousServer(server, host, bound, nranks, id.slice(), options.timeoutMs ?? defaultTimeoutMs));
      });
    });
  }

  /** Ranks that have acknowledged the id so far. */
  get joined(): readonly number[] {
    return [...this.#joined].sort((a, b) => a - b);
  }

  /** Stops listening and drops every open connection; `done` rejects if ranks were still missing. */
  close(): void {
    if (this.#server.listening) this.#server.close();
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
    if (this.#joined.size < this.nranks - 1) this.#finish(new RendezvousError("rejected", `rendezvous on ${this.host}:${this.port} was closed before every rank joined`));
  }

  #serve(socket: Socket, id: Uint8Array): void {
    // Bounded: at most a few connections per expected rank (retries, strays) are kept open.
    if (this.#sockets.size >= 4 * this.nranks + 16) return void socket.destroy();
    this.#sockets.add(socket);
    socket.on("close", () => this.#sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    socket.setTimeout(helloTimeoutMs, () => socket.destroy());
    let reader = new FrameReader();
    let rank = -1;
    const reject = (message: string) => {
      socket.end(frame(kind.error, new TextEncoder().encode(message)));
    };
    socket.on("data", (chunk: Uint8Array) => {
      let message: Frame | undefined;
      try {
        message = reader.push(chunk);
      } catch {
        return void socket.destroy();
      }
      if (!message) return;
      if (message.version !== rendezvousVersion) return reject(`rank 0 speaks rendezvous protocol version ${rendezvousVersion}, this rank ${message.version}: use the same gpuffi version on every rank`);
      if (rank < 0 && message.kind === kind.hello && message.body.byteLength === 8) {
        const view = new DataView(message.body.buffer, message.body.byteOffset);
        const [peerRank, peerRanks] = [view.getUint32(0), view.getUint32(4)];
        if (peerRanks !== this.nranks) return reject(`rank ${peerRank} expects ${peerRanks} ranks, but rank 0 was started with ${this.nranks}`);
        if (peerRank < 1 || peerRank >= this.nranks) return reject(`rank ${peerRank} is out of range: the other ranks are 1 to ${this.nranks - 1}`);
        if (this.#joined.has(peerRank)) return reject(`rank ${peerRank} has already joined; every rank needs its own number`);
        rank = peerRank;
        // A new reader: the ack is a frame of its own.
        reader = new FrameReader();
        socket.write(frame(kind.id, id));
        return;
      }
      if (rank >= 0 && message.kind === kind.ack && !this.#joined.has(rank)) {
        this.#joined.add(rank);
        socket.end();
        if (this.#joined.size === this.nranks - 1) this.#finish();
        return;
      }
      socket.destroy();
    });
  }
}

// ----- ranks 1 … n-1 -------------------------------------------------------------------------

/** One attempt: connect, say hello, read the id or the error, acknowledge. */
function attempt(host: string, port: number, rank: number, nranks: number, timeoutMs: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host, port });
    const reader = new FrameReader();
    let settled = false;
    const settle = (error: Error | undefined, id?: Uint8Array) => {
      if (settled) return;
      settled = true;
      if (error) {
        socket.destroy();
        reject(error);
      } else {
        socket.end(frame(kind.ack));
        resolve(id!);
      }
    };
    socket.setTimeout(timeoutMs, () => settle(new RendezvousError("timeout", `rank 0 at ${host}:${port} accepted the connection but sent no id within ${timeoutMs} ms`)));
    socket.on("connect", () => socket.write(frame(kind.hello, rankBody(rank, nranks))));
    socket.on("error", (error: NodeJS.ErrnoException) => settle(new RendezvousError("network", `${error.code ?? "error"}: ${error.message}`, { cause: error })));
    socket.on("close", () => settle(new RendezvousError("network", `rank 0 at ${host}:${port} closed the connection without sending the id`)));
    socket.on("data", (chunk: Uint8Array) => {
      let message: Frame | undefined;
      try {
        message = reader.push(chunk);
      } catch (error) {
        return settle(new RendezvousError("protocol", `the peer at ${host}:${port} is not a gpuffi rendezvous server: ${(error as Error).message}`));
      }
      if (!message) return;
      if (message.kind === kind.error) return settle(new RendezvousError("rejected", `rank 0 at ${host}:${port} refused rank ${rank}: ${new TextDecoder().decode(message.body)}`));
      if (message.version !== rendezvousVersion) return settle(new RendezvousError("protocol", `rank 0 at ${host}:${port} speaks rendezvous protocol version ${message.version}, this rank ${rendezvousVersion}: use the same gpuffi version on every rank`));
      if (message.kind !== kind.id || message.body.byteLength !== ncclUniqueIdBytes) return settle(new RendezvousError("protocol", `rank 0 at ${host}:${port} sent an unexpected message (kind ${message.kind}, ${message.body.byteLength} bytes)`));
      settle(undefined, message.body);
    });
  });
}

/**
 * Rank `rank`'s side: fetches the id from rank 0 at host:port. Connection failures (rank 0 not
 * up yet) are retried with a growing pause until `timeoutMs`; a refusal by rank 0 or a peer that
 * is not a gpuffi rendezvous is final.
 */
export async function fetchUniqueId(options: Omit<RendezvousOptions, "makeId">): Promise<Uint8Array> {
  const { host, port, rank, nranks } = options;
  checkRendezvousArgs(host, port, nranks, options.timeoutMs, "fetchUniqueId");
  if (port === 0) throw new RendezvousError("rejected", "fetchUniqueId: port 0 is for rank 0 only; pass rank 0's actual port");
  if (typeof rank !== "number" || !Number.isSafeInteger(rank) || rank < 1 || rank >= nranks) {
    throw new RendezvousError("rejected", `fetchUniqueId: rank must be in [1, ${nranks}) (rank 0 serves the id), got ${String(rank)}`);
  }
  const timeoutMs = options.timeoutMs ?? defaultTimeoutMs;
  const deadline = performance.now() + timeoutMs;
  let pause = 50;
  for (;;) {
    const left = deadline - performance.now();
    try {
      return await attempt(host, port, rank, nranks, Math.max(left, 1));
    } catch (error) {
      if ((error as RendezvousError).reason !== "network") throw error;
      if (performance.now() + pause >= deadline) {
        throw new RendezvousError("timeout", `rank ${rank} could not reach rank 0 at ${host}:${port} within ${timeoutMs} ms (last error: ${(error as Error).message}); is rank 0 running and the port reachable?`, { cause: error });
      }
      await new Promise((resolve) => setTimeout(resolve, pause));
      pause = Math.min(pause * 2, 1000);
    }
  }
}

/**
 * Both sides in one call: rank 0 makes the id with `makeId`, serves it and resolves once every
 * rank has it; the others fetch it. Every rank gets the same bytes.
 */
export async function rendezvous(options: RendezvousOptions): Promise<Uint8Array> {
  if (options.rank !== 0) return fetchUniqueId(options);
  if (typeof options.makeId !== "function") throw new RendezvousError("rejected", "rendezvous: rank 0 needs makeId (e.g. () => nccl().uniqueId())");
  const id = options.makeId();
  const server = await RendezvousServer.listen(id, options);
  await server.done;
  return id;
}
