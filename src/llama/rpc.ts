// llama.cpp's RPC backend: devices of other machines (or other processes), each served by
// ggml's `ggml-rpc-server`, that a model spreads its layers over next to the local GPUs, as
// llama.cpp's `--rpc host:port,...` does.
//
// The ggml side (libggml-rpc's table, the protocol version) is in src/ggml/bindings.ts.
//
// ggml aborts the whole process when an RPC server it is handed cannot be reached or speaks
// another protocol version (GGML_ABORT in rpc_dispatcher::start). gpuffi therefore performs
// ggml's own handshake from JS first, over node:net, and turns each of those failures into an
// RpcError; only a server that has just answered is passed to ggml.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import { join } from "node:path";
import process from "node:process";
import { HostMemory, LibraryNotFoundError, type NativeLibrary, type Pointer } from "../ffi/index.ts";
import { rpcMaxServers as maxServers, rpcProtocol, rpcSonames, rpcSymbols, siblingLibrary } from "../ggml/index.ts";
import { LlamaError } from "./errors.ts";
import { Llama, type LlamaDevice } from "./llama.ts";

// ----- errors ---------------------------------------------------------------------------------

export type RpcFailure =
  | "argument" // a malformed endpoint or option
  | "unsupported" // this libllama has no RPC backend
  | "unreachable" // nothing accepts connections at host:port
  | "timeout" // connected, but no answer in time
  | "protocol" // the peer is not a ggml RPC server
  | "version" // a ggml RPC server of another protocol version
  | "no-devices" // the server exposes no device
  | "server-not-found" // no ggml-rpc-server executable to start
  | "server-exit"; // a started ggml-rpc-server exited

export class RpcError extends LlamaError {
  override name = "RpcError";
  constructor(readonly reason: RpcFailure, message: string, options?: { cause?: unknown }) {
    super(`ERR_LLAMA_RPC_${reason.toUpperCase().replace(/-/g, "_")}`, message, options);
  }
}

// ----- endpoints ------------------------------------------------------------------------------

export interface RpcEndpoint {
  readonly host: string;
  readonly port: number;
  /** "host:port", as ggml names the server. */
  readonly endpoint: string;
}

// ggml splits at the first ':' and resolves the host with gethostbyname: IPv4 addresses and
// host names only.
const hostPattern = /^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/;
const hostRule = "the host must be an IPv4 address or a host name (letters, digits, '.', '-')";

/** Checks an RPC server's "host:port" (IPv4 address or host name; port 1–65535). */
export function parseRpcEndpoint(value: unknown): RpcEndpoint {
  const refuse = (why: string) => new RpcError("argument", `RPC server ${JSON.stringify(value)}: ${why}`);
  if (typeof value !== "string") throw refuse("must be a \"host:port\" string");
  const colon = value.indexOf(":");
  if (colon < 0) throw refuse("has no port; write host:port, e.g. 127.0.0.1:50052");
  const [host, portText] = [value.slice(0, colon), value.slice(colon + 1)];
  if (portText.includes(":") || host.startsWith("[")) throw refuse("IPv6 addresses are not supported by ggml's RPC client; use an IPv4 address or a host name");
  if (!hostPattern.test(host)) throw refuse(hostRule);
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!(port >= 1 && port <= 65535)) throw refuse("the port must be a whole number from 1 to 65535");
  return { host, port, endpoint: `${host}:${port}` };
}

/** Checks a list of servers: 1 to 16 distinct "host:port" strings. */
export function parseRpcEndpoints(values: unknown): RpcEndpoint[] {
  if (!Array.isArray(values)) throw new RpcError("argument", `rpcServers must be an array of "host:port" strings, got ${String(values)}`);
  if (values.length === 0 || values.length > maxServers) throw new RpcError("argument", `rpcServers takes 1 to ${maxServers} servers, got ${values.length}`);
  const endpoints = values.map(parseRpcEndpoint);
  const seen = new Set<string>();
  for (const { endpoint } of endpoints) {
    if (seen.has(endpoint)) throw new RpcError("argument", `RPC server ${endpoint} is listed twice`);
    seen.add(endpoint);
  }
  return endpoints;
}

function checkTimeout(timeoutMs: unknown, what: string): number {
  if (timeoutMs !== undefined && (typeof timeoutMs !== "number" || !(timeoutMs > 0) || !Number.isFinite(timeoutMs))) {
    throw new RpcError("argument", `${what}: timeoutMs must be a positive number of milliseconds, got ${String(timeoutMs)}`);
  }
  return timeoutMs ?? defaultTimeoutMs;
}

const defaultTimeoutMs = 10_000;

// ----- the handshake --------------------------------------------------------------------------

export interface RpcServerInfo {
  readonly endpoint: string;
  /** The server's protocol version, "major.minor.patch". */
  readonly protocol: string;
  /** How many devices it exposes. */
  readonly devices: number;
}

// enum rpc_cmd (ggml-rpc.cpp); HELLO is pinned to 14 across protocol versions.
const cmdHello = 14;
const cmdDeviceCount = 15;
/** RPC_CONN_CAPS_SIZE: transport capabilities; all zero asks for plain TCP. */
const capsBytes = 24;

/** A request: [u8 command][u64 LE size][size bytes]. */
function request(command: number, body: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(9 + body.byteLength);
  bytes[0] = command;
  new DataView(bytes.buffer).setBigUint64(1, BigInt(body.byteLength), true);
  bytes.set(body, 9);
  return bytes;
}

/** HELLO and DEVICE_COUNT, sent together; the answers are [u64 LE size][body] each. */
const probeRequest = new Uint8Array([...request(cmdHello, new Uint8Array(capsBytes)), ...request(cmdDeviceCount, new Uint8Array(0))]);
/** rpc_msg_hello_rsp: major, minor, patch, padding, caps. Protocols before 4 answered the first three only. */
const helloBytes = 4 + capsBytes;
const oldHelloBytes = 3;

/**
 * Performs ggml's RPC handshake with the server at "host:port" and asks how many devices it
 * exposes, then disconnects. A ggml RPC server serves one client at a time: while another
 * client is connected, this waits (and times out).
 */
export async function probeRpcServer(server: string, options: { timeoutMs?: number } = {}): Promise<RpcServerInfo> {
  const { host, port, endpoint } = parseRpcEndpoint(server);
  const timeoutMs = checkTimeout(options.timeoutMs, "probeRpcServer");
  return new Promise((resolve, reject) => {
    // IPv4, as ggml's gethostbyname: "localhost" must not become ::1 here and 127.0.0.1 there.
    const socket = createConnection({ host, port, family: 4 });
    let received = new Uint8Array(0);
    let settled = false;
    const settle = (error: RpcError | undefined, info?: RpcServerInfo) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      if (error) reject(error);
      else resolve(info!);
    };
    const notRpc = (what: string) => new RpcError("protocol", `${endpoint} is not a ggml RPC server: ${what}`);
    socket.setTimeout(timeoutMs, () =>
      settle(new RpcError("timeout", `${endpoint} accepted the connection but did not answer ggml's RPC handshake within ${timeoutMs} ms (a ggml-rpc-server serves one client at a time: is another one connected?)`)));
    socket.on("connect", () => socket.write(probeRequest));
    socket.on("error", (error: NodeJS.ErrnoException) =>
      settle(new RpcError("unreachable", `cannot connect to the RPC server ${endpoint}: ${error.code ?? error.message}; is ggml-rpc-server running there and the port open?`, { cause: error })));
    socket.on("close", () =>
      settle(notRpc(`it closed the connection after ${received.byteLength} bytes of the handshake (a ggml-rpc-server of another llama.cpp version does that too)`)));
    socket.on("data", (chunk: Uint8Array) => {
      received = new Uint8Array([...received, ...chunk]);
      const view = new DataView(received.buffer);
      if (received.byteLength < 8) return;
      const helloSize = Number(view.getBigUint64(0, true));
      if (helloSize !== helloBytes && helloSize !== oldHelloBytes) return settle(notRpc(`its handshake answer is ${view.getBigUint64(0, true)} bytes, not ${helloBytes}`));
      if (received.byteLength < 8 + helloSize) return;
      const [major, minor, patch] = [received[8]!, received[9]!, received[10]!];
      // The client's rule in negotiate_hello: the same major version, a minor one not newer.
      if (major !== rpcProtocol.major || minor > rpcProtocol.minor) {
        return settle(new RpcError("version", `the RPC server ${endpoint} speaks protocol ${major}.${minor}.${patch}, this libllama ${rpcProtocol.major}.${rpcProtocol.minor}.x: run a ggml-rpc-server built from llama.cpp 0.5.0 (scripts/build-llama.sh --rpc)`));
      }
      if (helloSize !== helloBytes) return settle(notRpc(`its handshake answer is ${helloSize} bytes, not ${helloBytes}`));
      const countAt = 8 + helloBytes;
      if (received.byteLength < countAt + 8) return;
      if (view.getBigUint64(countAt, true) !== 4n) return settle(notRpc("its device count answer is malformed"));
      if (received.byteLength < countAt + 12) return;
      const devices = view.getUint32(countAt + 8, true);
      if (devices === 0) return settle(new RpcError("no-devices", `the RPC server ${endpoint} exposes no device`));
      settle(undefined, { endpoint, protocol: `${major}.${minor}.${patch}`, devices });
    });
  });
}

// ----- servers in use -------------------------------------------------------------------------

// ggml keeps one connection per endpoint while anything of it (a model's weights, a context's
// cache) lives, and the server serves only that client meanwhile. An endpoint is therefore
// probed when this process starts to use it, and not again while a model still holds it (the
// probe would wait behind our own connection). Concurrent loads share one probe.
const inUse = new Map<string, { users: number; ready: Promise<RpcServerInfo> }>();

function releaseEndpoint(endpoint: string): void {
  const state = inUse.get(endpoint)!;
  if (--state.users === 0) inUse.delete(endpoint);
}

async function acquireEndpoint(endpoint: string, timeoutMs: number): Promise<void> {
  let state = inUse.get(endpoint);
  if (state === undefined) {
    state = { users: 0, ready: probeRpcServer(endpoint, { timeoutMs }) };
    inUse.set(endpoint, state);
  }
  state.users++;
  try {
    await state.ready;
  } catch (error) {
    releaseEndpoint(endpoint);
    throw error;
  }
}

const libraries = new WeakMap<Llama, NativeLibrary<typeof rpcSymbols>>();

function rpcLibrary(llama: Llama): NativeLibrary<typeof rpcSymbols> {
  let library = libraries.get(llama);
  if (library !== undefined) return library;
  const rebuild = "build one with scripts/build-llama.sh --rpc and point GPUFFI_LLAMA_DIR (or Llama.load({ dir })) at it";
  if (!llama.supportsRpc) throw new RpcError("unsupported", `the libllama at ${llama.path} was built without ggml's RPC backend (GGML_RPC=ON): ${rebuild}`);
  try {
    library = siblingLibrary("libggml-rpc", rpcSonames, rpcSymbols, llama.dir);
  } catch (error) {
    if (!(error instanceof LibraryNotFoundError)) throw error;
    throw new RpcError("unsupported", `the libllama at ${llama.path} has an RPC backend, but libggml-rpc could not be opened next to it: ${rebuild}`, { cause: error });
  }
  libraries.set(llama, library);
  return library;
}

/** @internal RPC servers in use by a model (or a query), until `release`. */
export interface RpcLease {
  /** The servers' devices, in the order the servers were given. */
  readonly remote: readonly Pointer[];
  /**
   * What llama.cpp's `--rpc` would offload to, as a NULL-terminated `ggml_backend_dev_t[]` for
   * llama_model_params.devices: the servers' devices, then the local GPUs (integrated ones only
   * when there is no other). The caller disposes it.
   */
  readonly devices: HostMemory;
  /** Call once the model (and with it ggml's connections) is freed, or its load failed. */
  release(): void;
}

/** @internal Probes the servers this process is not connected to yet and hands them to ggml. */
export async function leaseRpcDevices(llama: Llama, servers: unknown, timeoutMs?: number): Promise<RpcLease> {
  const endpoints = parseRpcEndpoints(servers).map((e) => e.endpoint);
  const timeout = checkTimeout(timeoutMs, "rpcServers");
  const { ggml_backend_rpc_add_server: addServer } = rpcLibrary(llama).symbols;
  const acquired: string[] = [];
  const release = () => acquired.splice(0).forEach(releaseEndpoint);
  try {
    const probes = await Promise.allSettled(endpoints.map((endpoint) => acquireEndpoint(endpoint, timeout).then(() => acquired.push(endpoint))));
    const failed = probes.find((probe) => probe.status === "rejected");
    if (failed) throw failed.reason;
    // ggml caches each endpoint's registry for the life of the process; a repeated call is free.
    const remote = endpoints.flatMap((endpoint) => {
      const registry = addServer(endpoint);
      if (registry === 0) throw new RpcError("no-devices", `the RPC server ${endpoint} exposes no device`);
      return llama.registryDevices(registry);
    });
    const local = llama.deviceHandles();
    const gpus = local.filter((d) => d.type === "gpu");
    const offload = [...remote, ...(gpus.length > 0 ? gpus : local.filter((d) => d.type === "igpu")).map((d) => d.handle), 0];
    return { remote, devices: HostMemory.from(BigUint64Array.from(offload, (device) => BigInt(device))), release };
  } catch (error) {
    release();
    throw error;
  }
}

/**
 * The devices the RPC servers expose (named "RPC0", "RPC1", … in the order ggml first met them;
 * the description is the server's endpoint; memory as the server reports it).
 */
export async function rpcDevices(servers: readonly string[], options: { llama?: Llama; timeoutMs?: number } = {}): Promise<LlamaDevice[]> {
  const llama = options.llama ?? Llama.shared();
  const lease = await leaseRpcDevices(llama, servers, options.timeoutMs);
  try {
    return lease.remote.map((device) => llama.describeDevice(device));
  } finally {
    lease.devices.dispose();
    lease.release();
  }
}

// ----- ggml-rpc-server processes --------------------------------------------------------------

export interface RpcServerOptions {
  /** The ggml-rpc-server executable. Default: `$GPUFFI_RPC_SERVER`, else next to the libllama of `llama`. */
  readonly path?: string;
  /** Whose directory holds ggml-rpc-server when `path` and `$GPUFFI_RPC_SERVER` are not given (default: Llama.shared()). */
  readonly llama?: Llama;
  /** The address to listen on (default 127.0.0.1; anything else exposes the machine: ggml's RPC has no authentication). */
  readonly host?: string;
  /** The port; 0 (the default) picks a free one. */
  readonly port?: number;
  /** Threads of the CPU device (default: ggml-rpc-server's own). */
  readonly threads?: number;
  /** ggml device names to expose, e.g. ["CUDA0"] or ["CPU"] (default: every GPU, else the CPU). */
  readonly devices?: readonly string[];
  /** Extra environment for the server, e.g. { CUDA_VISIBLE_DEVICES: "1" }. */
  readonly env?: Readonly<Record<string, string>>;
  /** Milliseconds until the server must answer the handshake (default 30 000). */
  readonly timeoutMs?: number;
}

/** `path`, else $GPUFFI_RPC_SERVER, else ggml-rpc-server next to libllama. */
export function rpcServerExecutable(options: Pick<RpcServerOptions, "path" | "llama"> = {}): string {
  const dir = () => (options.llama ?? Llama.shared()).dir;
  const path = options.path ?? process.env.GPUFFI_RPC_SERVER ?? (dir() === undefined ? undefined : join(dir()!, "ggml-rpc-server"));
  if (path === undefined || !existsSync(path)) {
    throw new RpcError("server-not-found", `no ggml-rpc-server ${path === undefined ? "(libllama was found by the dynamic linker, in no known directory)" : `at ${path}`}: build it with scripts/build-llama.sh --rpc (it lands next to libllama), or pass path / set GPUFFI_RPC_SERVER`);
  }
  return path;
}

function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;
/** What a server printed last, for error messages (bounded). */
const outputTailBytes = 4096;

/**
 * A `ggml-rpc-server` child process: started, waited for until it answers ggml's handshake, and
 * stopped with `stop()` (or `await using`). Servers still running when this process exits are
 * killed then.
 */
export class RpcServerProcess {
  #output = "";
  #exited: Promise<number | null>;

  private constructor(
    readonly child: ChildProcess,
    readonly host: string,
    readonly port: number,
  ) {
    running.add(child);
    const keep = (chunk: string) => (this.#output = (this.#output + chunk).slice(-outputTailBytes));
    child.stdout?.setEncoding("utf8").on("data", keep);
    child.stderr?.setEncoding("utf8").on("data", keep);
    this.#exited = new Promise((resolve) => {
      child.once("error", (error) => {
        keep(`${error.message}\n`);
        resolve(null);
      });
      child.once("exit", (code) => resolve(code));
    }).finally(() => running.delete(child)) as Promise<number | null>;
  }

  /** "host:port", for `rpcServers`. */
  get endpoint(): string {
    return `${this.host}:${this.port}`;
  }

  /** The last few KiB the server printed. */
  get output(): string {
    return this.#output;
  }

  /** Starts ggml-rpc-server and resolves once it has answered the handshake. */
  static async start(options: RpcServerOptions = {}): Promise<RpcServerProcess> {
    const { host = "127.0.0.1", port = 0, threads, devices } = options;
    if (typeof host !== "string" || !hostPattern.test(host)) throw new RpcError("argument", `RpcServerProcess.start: ${hostRule}, got ${JSON.stringify(host)}`);
    if (typeof port !== "number" || !Number.isInteger(port) || port < 0 || port > 65535) throw new RpcError("argument", `RpcServerProcess.start: port must be a whole number from 0 to 65535, got ${String(port)}`);
    if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1)) throw new RpcError("argument", `RpcServerProcess.start: threads must be a whole number ≥ 1, got ${String(threads)}`);
    if (devices !== undefined && (!Array.isArray(devices) || devices.length === 0 || devices.some((d) => typeof d !== "string" || !/^[\w.-]+$/.test(d)))) {
      throw new RpcError("argument", `RpcServerProcess.start: devices must be ggml device names such as "CUDA0" or "CPU", got ${JSON.stringify(devices)}`);
    }
    const timeoutMs = checkTimeout(options.timeoutMs ?? 30_000, "RpcServerProcess.start");
    const path = rpcServerExecutable(options);
    const listenPort = port || await freePort(host);
    const args = ["--host", host, "--port", String(listenPort)];
    if (threads !== undefined) args.push("--threads", String(threads));
    if (devices !== undefined) args.push("--device", devices.join(","));
    const child = spawn(path, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...options.env } });
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      process.on("exit", () => running.forEach((c) => c.kill("SIGKILL")));
    }
    const server = new RpcServerProcess(child, host, listenPort);
    await server.#ready(timeoutMs);
    return server;
  }

  async #ready(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    let exitCode: number | null | undefined;
    void this.#exited.then((code) => (exitCode = code));
    for (;;) {
      if (exitCode !== undefined) {
        throw new RpcError("server-exit", `ggml-rpc-server (${this.child.spawnfile}) exited with ${exitCode ?? "an error"} before answering on ${this.endpoint}:\n${this.#output.trim()}`);
      }
      try {
        await probeRpcServer(this.endpoint, { timeoutMs: Math.max(1, deadline - performance.now()) });
        return;
      } catch (error) {
        // Not listening yet: try again shortly; anything else is final.
        if (!(error instanceof RpcError) || error.reason !== "unreachable") {
          await this.stop();
          throw error;
        }
      }
      if (performance.now() >= deadline) {
        await this.stop();
        throw new RpcError("timeout", `ggml-rpc-server did not answer on ${this.endpoint} within ${timeoutMs} ms:\n${this.#output.trim()}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Ends the server (SIGTERM, then SIGKILL after 5 s) and waits for it to exit. */
  async stop(): Promise<void> {
    if (!running.has(this.child)) return;
    this.child.kill("SIGTERM");
    const killer = setTimeout(() => this.child.kill("SIGKILL"), 5000);
    await this.#exited;
    clearTimeout(killer);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}
