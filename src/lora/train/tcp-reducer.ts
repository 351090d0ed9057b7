// Gradients summed over TCP, for data-parallel training on CPUs (and for testing the
// multi-process machinery where there is no GPU). Rank 0 is the hub: every other rank sends it
// its range, rank 0 adds the ranges in rank order in float32 (((r0 + r1) + r2) + …) and sends the
// sum back, so every rank gets the same bytes and a run gives the same numbers every time.
// The ranks find the hub through the NCCL bootstrap's rendezvous (src/cuda/nccl/rendezvous.ts):
// instead of an NCCL unique id, rank 0 hands out the hub's port. A hub of N - 1 connections
// moves 2(N - 1) copies of the gradients through rank 0 per step: meant for few ranks and small
// adapters, where NCCL's ring is not available.
import { type Socket, createConnection, createServer } from "node:net";
import { type Pointer, copyToNative, nativeView } from "../../ffi/index.ts";
import { RendezvousError, rendezvous } from "../../cuda/index.ts";
import type { GradientReducer } from "./data-parallel.ts";
import { TrainingError } from "./errors.ts";

const magic = 0x47504152; // "GPAR"
const protocolVersion = 1;
const kind = { hello: 1, ready: 2, data: 3 } as const;
const headerBytes = 16;
/** A payload is one rank's gradients: a larger length in a header is garbage, not a message. */
const maxPayloadBytes = 2 ** 31;
const idBytes = 128;
const defaultTimeoutMs = 60_000;

export interface TcpReducerOptions {
  /** Rank 0's address: the rendezvous and the hub listen there, the other ranks connect to it. */
  readonly host: string;
  /** The rendezvous port, the same on every rank (rank 0 may pass 0 only when it is alone). */
  readonly port: number;
  readonly rank: number;
  readonly ranks: number;
  /** Milliseconds until connecting gives up (default 60 000). */
  readonly timeoutMs?: number;
}

interface Message {
  readonly kind: number;
  /** The rank (hello) or the sum's sequence number (data). */
  readonly arg: number;
  readonly payload: Uint8Array;
}

/** The rendezvous "id": the magic, the protocol version and the hub's port. */
function encodeHubId(hubPort: number): Uint8Array {
  const id = new Uint8Array(idBytes);
  const view = new DataView(id.buffer);
  view.setUint32(0, magic);
  view.setUint16(4, protocolVersion);
  view.setUint16(6, hubPort);
  return id;
}

function decodeHubId(id: Uint8Array, where: string): number {
  const view = new DataView(id.buffer, id.byteOffset, id.byteLength);
  if (view.getUint32(0) !== magic) throw new TrainingError("ERR_TRAIN_RENDEZVOUS", `${where} handed out an NCCL id, not a TCP reducer's address: are the ranks using the same device kind?`);
  if (view.getUint16(4) !== protocolVersion) throw new TrainingError("ERR_TRAIN_RENDEZVOUS", `${where} speaks TCP reducer protocol ${view.getUint16(4)}, this rank ${protocolVersion}: use the same gpuffi on every rank`);
  return view.getUint16(6);
}

function frame(type: number, arg: number, payload: Uint8Array = new Uint8Array(0)): Uint8Array[] {
  const header = new Uint8Array(headerBytes);
  const view = new DataView(header.buffer);
  view.setUint32(0, magic);
  view.setUint32(4, type);
  view.setUint32(8, arg);
  view.setUint32(12, payload.byteLength);
  return payload.byteLength === 0 ? [header] : [header, payload];
}

/**
 * One peer's connection: frames in (header, then a payload read straight into one buffer of its
 * announced size), delivered in order to whoever awaits `next()`. When the connection ends, every
 * waiting and later `next()` rejects with the error `lost()` makes.
 */
class Peer {
  readonly #socket: Socket;
  readonly #header = new Uint8Array(headerBytes);
  #headerFill = 0;
  #current: { kind: number; arg: number; payload: Uint8Array; fill: number } | undefined;
  readonly #queue: Message[] = [];
  readonly #waiting: { resolve: (m: Message) => void; reject: (e: Error) => void }[] = [];
  #failure: Error | undefined;
  #closing = false;

  constructor(socket: Socket, private readonly lost: (detail: string) => Error) {
    this.#socket = socket;
    socket.setNoDelay(true);
    socket.on("data", (chunk: Uint8Array) => this.#push(chunk));
    socket.on("error", (error: Error) => this.#fail(error.message));
    socket.on("close", () => this.#fail("the connection closed"));
  }

  send(parts: Uint8Array[]): void {
    for (const part of parts) this.#socket.write(part);
  }

  next(): Promise<Message> {
    const message = this.#queue.shift();
    if (message !== undefined) return Promise.resolve(message);
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }

  close(): void {
    this.#closing = true;
    this.#socket.destroy();
  }

  #fail(detail: string): void {
    if (this.#failure !== undefined) return;
    this.#failure = this.#closing ? new TrainingError("ERR_TRAIN_ARGUMENT", "the TCP reducer was closed") : this.lost(detail);
    for (const w of this.#waiting.splice(0)) w.reject(this.#failure);
    this.#socket.destroy();
  }

  #deliver(message: Message): void {
    const waiter = this.#waiting.shift();
    if (waiter !== undefined) waiter.resolve(message);
    else this.#queue.push(message);
  }

  #push(chunk: Uint8Array): void {
    let at = 0;
    while (at < chunk.byteLength) {
      if (this.#current === undefined) {
        const take = Math.min(headerBytes - this.#headerFill, chunk.byteLength - at);
        this.#header.set(chunk.subarray(at, at + take), this.#headerFill);
        this.#headerFill += take;
        at += take;
        if (this.#headerFill < headerBytes) return;
        this.#headerFill = 0;
        const view = new DataView(this.#header.buffer);
        if (view.getUint32(0) !== magic || view.getUint32(12) > maxPayloadBytes) return this.#fail("the peer sent something that is not a TCP reducer message");
        this.#current = { kind: view.getUint32(4), arg: view.getUint32(8), payload: new Uint8Array(view.getUint32(12)), fill: 0 };
      }
      const current = this.#current;
      const take = Math.min(current.payload.byteLength - current.fill, chunk.byteLength - at);
      current.payload.set(chunk.subarray(at, at + take), current.fill);
      current.fill += take;
      at += take;
      if (current.fill === current.payload.byteLength) {
        this.#current = undefined;
        this.#deliver({ kind: current.kind, arg: current.arg, payload: current.payload });
      }
    }
  }
}

function checkArgs(options: TcpReducerOptions): void {
  const { rank, ranks } = options;
  if (!Number.isSafeInteger(ranks) || ranks < 1 || ranks > 0xffff) throw new TrainingError("ERR_TRAIN_ARGUMENT", `ranks must be a whole number in [1, 65535], got ${ranks}`);
  if (!Number.isSafeInteger(rank) || rank < 0 || rank >= ranks) throw new TrainingError("ERR_TRAIN_ARGUMENT", `rank must be in [0, ${ranks}), got ${rank}`);
}

function withTimeout<T>(promise: Promise<T>, timeoutMs: number, message: () => string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new RendezvousError("timeout", message())), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Sums F32 ranges in host memory across the ranks over TCP, rank 0 as the hub. For CPU trainers. */
export class TcpGradientReducer implements GradientReducer, Disposable {
  readonly hostMemory = true;
  #sums = 0;
  #closed = false;

  private constructor(
    readonly rank: number,
    readonly ranks: number,
    /** Rank 0: ranks 1 … N-1 by rank; other ranks: rank 0 alone. */
    private readonly peers: ReadonlyMap<number, Peer>,
  ) {}

  /**
   * Every rank calls this with the same host, port and rank count; it resolves once every rank
   * is connected to rank 0. Rendezvous failures are RendezvousErrors, as NcclCommunicator.connect's.
   */
  static async connect(options: TcpReducerOptions): Promise<TcpGradientReducer> {
    checkArgs(options);
    const { host, port, rank, ranks } = options;
    const timeoutMs = options.timeoutMs ?? defaultTimeoutMs;
    if (ranks === 1) return new TcpGradientReducer(0, 1, new Map());
    return rank === 0 ? TcpGradientReducer.#hub(host, port, ranks, timeoutMs) : TcpGradientReducer.#join(host, port, rank, ranks, timeoutMs);
  }

  static async #hub(host: string, port: number, ranks: number, timeoutMs: number): Promise<TcpGradientReducer> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", (error) => reject(new RendezvousError("network", `TCP reducer: cannot listen on ${host}: ${error.message}`, { cause: error })));
      server.listen(0, host, resolve);
    });
    const hubPort = (server.address() as { port: number }).port;
    const peers = new Map<number, Peer>();
    const lost = (rank: number) => (detail: string) => new TrainingError("ERR_TRAIN_PEER_LOST", `rank 0 lost rank ${rank} of ${ranks}: ${detail}`);
    let joined!: () => void;
    const everyone = new Promise<void>((resolve) => (joined = resolve));
    server.on("connection", (socket) => {
      // Until its hello names its rank, a connection is nobody's; a bad hello closes it.
      let rank = -1;
      const peer = new Peer(socket, (detail) => (rank < 0 ? new TrainingError("ERR_TRAIN_PEER_LOST", detail) : lost(rank)(detail)));
      peer.next().then((hello) => {
        const view = new DataView(hello.payload.buffer, hello.payload.byteOffset, hello.payload.byteLength);
        const claimed = hello.arg;
        if (hello.kind !== kind.hello || hello.payload.byteLength !== 4 || view.getUint32(0) !== ranks || claimed < 1 || claimed >= ranks || peers.has(claimed)) return peer.close();
        rank = claimed;
        peers.set(rank, peer);
        if (peers.size === ranks - 1) joined();
      }, () => peer.close());
    });
    try {
      await rendezvous({ host, port, rank: 0, nranks: ranks, timeoutMs, makeId: () => encodeHubId(hubPort) });
      await withTimeout(everyone, timeoutMs, () => `TCP reducer on ${host}:${hubPort}: rank(s) ${Array.from({ length: ranks - 1 }, (_, i) => i + 1).filter((r) => !peers.has(r)).join(", ")} of ${ranks} fetched the address but did not connect within ${timeoutMs} ms`);
    } catch (error) {
      for (const peer of peers.values()) peer.close();
      server.close();
      throw error;
    }
    // Nobody else may join: the hub's port closes, the connections stay.
    server.close();
    for (const peer of peers.values()) peer.send(frame(kind.ready, 0));
    return new TcpGradientReducer(0, ranks, peers);
  }

  static async #join(host: string, port: number, rank: number, ranks: number, timeoutMs: number): Promise<TcpGradientReducer> {
    const started = performance.now();
    const id = await rendezvous({ host, port, rank, nranks: ranks, timeoutMs });
    const hubPort = decodeHubId(id, `rank 0 at ${host}:${port}`);
    const socket = createConnection({ host, port: hubPort });
    const peer = new Peer(socket, (detail) => new TrainingError("ERR_TRAIN_PEER_LOST", `rank ${rank} lost rank 0 of ${ranks} (the TCP reducer's hub): ${detail}`));
    const body = new Uint8Array(4);
    new DataView(body.buffer).setUint32(0, ranks);
    peer.send(frame(kind.hello, rank, body));
    try {
      const ready = await withTimeout(peer.next(), Math.max(1, timeoutMs - (performance.now() - started)), () => `rank ${rank}: rank 0's TCP reducer at ${host}:${hubPort} did not report every rank connected within ${timeoutMs} ms`);
      if (ready.kind !== kind.ready) throw new TrainingError("ERR_TRAIN_RENDEZVOUS", `rank ${rank}: rank 0's TCP reducer sent message kind ${ready.kind} instead of ready`);
    } catch (error) {
      peer.close();
      throw error;
    }
    return new TcpGradientReducer(rank, ranks, new Map([[0, peer]]));
  }

  /** In place: every rank's [ptr, ptr + byteLength) of F32 values becomes their sum over the ranks, added in rank order. */
  async sum(ptr: Pointer, byteLength: number): Promise<void> {
    if (this.#closed) throw new TrainingError("ERR_TRAIN_ARGUMENT", "the TCP reducer was closed");
    if (!Number.isSafeInteger(byteLength) || byteLength < 0 || byteLength % 4 !== 0) throw new TrainingError("ERR_TRAIN_ARGUMENT", `TcpGradientReducer.sum: byteLength must be a multiple of 4, got ${byteLength}`);
    if (this.ranks === 1 || byteLength === 0) return;
    const sequence = ++this.#sums;
    const mine = new Uint8Array(nativeView(ptr, byteLength).slice(0));
    const check = (message: Message, from: number): Uint8Array => {
      if (message.kind !== kind.data || message.arg !== sequence % 2 ** 32 || message.payload.byteLength !== byteLength) {
        throw new TrainingError("ERR_TRAIN_PEER_LOST", `rank ${this.rank}: rank ${from} is out of step (sum ${message.arg} of ${message.payload.byteLength} bytes, expected sum ${sequence} of ${byteLength}): do all ranks train the same adapter?`);
      }
      return message.payload;
    };
    if (this.rank !== 0) {
      const hub = this.peers.get(0)!;
      hub.send(frame(kind.data, sequence, mine));
      copyToNative(ptr, check(await hub.next(), 0));
      return;
    }
    const ranked = Array.from({ length: this.ranks - 1 }, (_, i) => i + 1);
    const theirs = await Promise.all(ranked.map(async (rank) => check(await this.peers.get(rank)!.next(), rank)));
    const total = new Float32Array(mine.buffer);
    for (const bytes of theirs) {
      const values = new Float32Array(bytes.buffer, bytes.byteOffset, byteLength / 4);
      for (let i = 0; i < total.length; i++) total[i]! += values[i]!;
    }
    for (const rank of ranked) this.peers.get(rank)!.send(frame(kind.data, sequence, mine));
    copyToNative(ptr, mine);
  }

  /** Closes the connections; a peer still summing sees its hub or rank lost. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const peer of this.peers.values()) peer.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
