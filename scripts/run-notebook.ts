// Runs a notebook's code cells in order, the way Deno's Jupyter kernel runs them, and (with
// --in-place or --out) writes their outputs into the .ipynb as nbformat 4.
//   deno run -A scripts/run-notebook.ts NOTEBOOK [--in-place | --out FILE] [--quiet]
//   deno run -A scripts/run-notebook.ts NOTEBOOK --check   (type-check the cells, run nothing)
//
// How: the kernel evaluates each cell through V8's inspector protocol, `Runtime.evaluate` with
// `replMode: true`, which is what gives a notebook its feel: top-level await, and `let`, `const`,
// `class` and `function` declarations of one cell visible in every later one (a cell may declare
// a `const` again; V8 refuses a `let` over an earlier `const`). This runner does the same through
// `node:inspector` inside its own Deno process. Before that, a cell's static imports become
// `const { … } = await import(…)` (scripts/notebook/cell-source.ts; relative specifiers resolve
// against the notebook's directory, the kernel's working directory) and its types are stripped by
// Deno's own swc (`stripTypeScriptTypes` of node:module; `transform` mode for enums and
// namespaces). The script is prefixed with `'use strict'; void 0;` on its first line, as the kernel
// does, so error line numbers are the cell's.
//
// Outputs, as the kernel (Deno 2.9) publishes them: `Deno.jupyter` (scripts/notebook/jupyter.ts)
// with `display`, `md`, `html`, `svg`, `image`, `format` and `broadcast`; the value of a cell's
// last expression (unless undefined) as an `execute_result` formatted as the kernel formats it;
// console output as `stream` outputs (Deno's own console, printing into the running cell). An
// exception ends the run: the cell gets the kernel's `error` output (name, message, stack), the
// cells after it are left unexecuted, the message names the cell and the line, the exit code is 1.
// The notebook is written (with --in-place or --out) in either case.
//
// --check runs nothing: the code cells, joined into one module with their imports kept static,
// go through `deno check` with the project's deno.json (plus the unstable declarations, where
// Deno.jupyter is), and each error is reported at its cell and line. For notebooks that cannot run
// here (gpu.ipynb without a GPU). A name declared again in a later cell is an error there only.
//
// Limits, and where it differs from the kernel:
// - Like the kernel, only the console reaches the notebook: bytes written to Deno.stdout,
//   process.stdout or file descriptors 1 and 2 (a C library's printf) go to the terminal.
// - No stdin (`prompt`, `confirm`), comms, widgets or magics; no timeout or interrupt. Timers and
//   handles a cell leaves behind are dropped when the run ends.
// - `import x = require()` and `export` forms other than `export <declaration>` are left as they
//   are, and fail as scripts.
// - An unhandled rejection or uncaught error from a timer fails the run (the kernel prints it and
//   goes on); a bigint result is shown (the kernel shows nothing).
// - With a terminal as stdout, Deno's console would color its text; the runner strips those
//   colors, since the kernel's console never has them. Values shown as text/plain are colored as
//   in the kernel unless NO_COLOR is set.
import { Session } from "node:inspector";
import * as nodeModule from "node:module";
import { existsSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { objectLiteralWrapping, resolveAgainst, rewriteImports } from "./notebook/cell-source.ts";
import { type Broadcast, format, jupyterNamespace } from "./notebook/jupyter.ts";
import { type DataOutput, type ErrorOutput, type Notebook, type Output, joinLines, readNotebook, writeNotebookText } from "./notebook/nbformat.ts";

const usage = "usage: deno run -A scripts/run-notebook.ts NOTEBOOK [--in-place | --out FILE] [--quiet] | NOTEBOOK --check";

interface Arguments {
  notebook: string;
  out?: string;
  quiet: boolean;
  check: boolean;
}

function parseArguments(args: string[]): Arguments {
  let notebook: string | undefined;
  let out: string | undefined;
  let quiet = false;
  let check = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--in-place") out = "";
    else if (arg === "--out") out = args[++i] ?? fail("--out needs a file");
    else if (arg === "--quiet") quiet = true;
    else if (arg === "--check") check = true;
    else if (arg === "-h" || arg === "--help") {
      console.log(usage);
      Deno.exit(0);
    } else if (arg.startsWith("-") || notebook !== undefined) fail(`unexpected argument ${arg}`);
    else notebook = arg;
  }
  if (notebook === undefined) fail("no notebook given");
  const path = resolve(notebook);
  if (check && out !== undefined) fail("--check runs nothing and writes nothing");
  return { notebook: path, out: out === undefined ? undefined : out === "" ? path : resolve(out), quiet, check };
}

function fail(message: string): never {
  console.error(`run-notebook: ${message}\n${usage}`);
  Deno.exit(2);
}

// --- the outputs of the running cell -----------------------------------------------------------

const encoder = new TextEncoder();
const terminal = {
  out: Deno.stdout.writeSync.bind(Deno.stdout),
  err: Deno.stderr.writeSync.bind(Deno.stderr),
};
let quiet = false;
let outputs: Output[] | undefined;
/** Outputs published with a display_id, for update_display_data. */
const displays = new Map<string, DataOutput[]>();
/** An error raised outside the cell's own evaluation (an unhandled rejection, an error event). */
let asyncError: ErrorOutput | undefined;

function stream(name: "stdout" | "stderr", text: string): void {
  if (!quiet) (name === "stdout" ? terminal.out : terminal.err)(encoder.encode(text));
  if (outputs === undefined || text === "") return;
  const last = outputs.at(-1);
  if (last?.output_type === "stream" && last.name === name) last.text = joinLines(last.text) + text;
  else outputs.push({ output_type: "stream", name, text });
}

/** A one-line note on the terminal for what a notebook frontend would render. */
function note(text: string): void {
  if (!quiet) terminal.err(encoder.encode(`${text}\n`));
}

function describeBundle(data: Record<string, unknown>): string {
  const plain = data["text/plain"];
  return typeof plain === "string" && Object.keys(data).length === 1 ? plain : `[${Object.keys(data).join(", ")}]`;
}

const broadcast: Broadcast = (messageType, content) => {
  if (outputs === undefined) return;
  const data = (content.data ?? {}) as Record<string, unknown>;
  const metadata = (content.metadata ?? {}) as Record<string, unknown>;
  const displayId = (content.transient as { display_id?: string } | undefined)?.display_id;
  switch (messageType) {
    case "display_data":
    case "execute_result": {
      const output: DataOutput = messageType === "execute_result"
        ? { output_type: "execute_result", data, metadata, execution_count: content.execution_count as number }
        : { output_type: "display_data", data, metadata };
      outputs.push(output);
      if (displayId !== undefined) displays.set(displayId, [...(displays.get(displayId) ?? []), output]);
      note(messageType === "execute_result" ? `Out[${output.execution_count}]: ${describeBundle(data)}` : `display: ${describeBundle(data)}`);
      break;
    }
    case "update_display_data":
      for (const output of displayId === undefined ? [] : displays.get(displayId) ?? []) {
        output.data = data;
        output.metadata = metadata;
      }
      break;
    case "stream":
      stream(content.name === "stderr" ? "stderr" : "stdout", String(content.text ?? ""));
      break;
    case "error":
      outputs.push({ output_type: "error", ename: String(content.ename), evalue: String(content.evalue), traceback: (content.traceback as string[]) ?? [] });
      break;
    case "clear_output":
      outputs.length = 0;
      break;
  }
};

// Deno's console colors its text when the real stdout is a terminal; the kernel's never is.
const ansiStyles = /\x1b\[[0-9;]*m/g;
const consoleColors = !Deno.noColor && (Deno.stdout.isTerminal() || Deno.stderr.isTerminal());

/**
 * Routes the console into the running cell, as the kernel does. Like the kernel, only the
 * console: bytes written to Deno.stdout, process.stdout or file descriptor 1 reach the terminal.
 */
function captureConsole(): void {
  const deno = Deno as unknown as { internal: symbol } & Record<symbol, { Console?: new (print: (text: string, level: number) => void) => Console }>;
  const DenoConsole = deno[deno.internal]?.Console;
  if (DenoConsole) {
    // Deno's own console (formatting, groups, tables, counters, %c), printing into the cell:
    // levels above 1 (warn, error, trace) go to stderr, as Deno's print does.
    const captured = new DenoConsole((text, level) => stream(level > 1 ? "stderr" : "stdout", consoleColors ? text.replace(ansiStyles, "") : text));
    for (const key of Object.keys(captured)) (console as unknown as Record<string, unknown>)[key] = (captured as unknown as Record<string, unknown>)[key];
  } else {
    const print = (name: "stdout" | "stderr") => (...args: unknown[]) => stream(name, `${args.map((a) => (typeof a === "string" ? a : Deno.inspect(a))).join(" ")}\n`);
    Object.assign(console, { log: print("stdout"), info: print("stdout"), debug: print("stdout"), warn: print("stderr"), error: print("stderr") });
  }
}

// --- the REPL session ----------------------------------------------------------------------------

interface RemoteObject {
  type: string;
  subtype?: string;
  value?: unknown;
  unserializableValue?: string;
  objectId?: string;
  description?: string;
}

interface CallFrame {
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ExceptionDetails {
  text: string;
  lineNumber: number;
  columnNumber: number;
  exception?: RemoteObject;
  stackTrace?: { callFrames: CallFrame[] };
}

interface EvaluateResult {
  result: RemoteObject;
  exceptionDetails?: ExceptionDetails;
}

const resultKey = Symbol.for("gpuffi.run-notebook.value");

class ReplSession {
  readonly #session = new Session();
  #global = "";

  async open(): Promise<void> {
    this.#session.connect();
    const global = await this.#post<EvaluateResult>("Runtime.evaluate", { expression: "globalThis" });
    this.#global = global.result.objectId!;
  }

  #post<T>(method: string, params: Record<string, unknown>): Promise<T> {
    return new Promise((resolve, reject) => {
      this.#session.post(method, params, (error: Error | null, result?: object) => (error ? reject(error) : resolve(result as T)));
    });
  }

  /** Evaluates a script as one REPL input: awaited when it awaits, declarations kept for the next. */
  evaluate(script: string): Promise<EvaluateResult> {
    return this.#post("Runtime.evaluate", { expression: script, replMode: true });
  }

  /** The JS value a remote object stands for (it lives in this process), boxed: a promise stays one. */
  async valueOf(remote: RemoteObject): Promise<{ value: unknown }> {
    const argument = remote.objectId !== undefined
      ? { objectId: remote.objectId }
      : remote.unserializableValue !== undefined
      ? { unserializableValue: remote.unserializableValue }
      : remote.type === "undefined"
      ? {}
      : { value: remote.value };
    await this.#post("Runtime.callFunctionOn", {
      objectId: this.#global,
      functionDeclaration: "function (value) { this[Symbol.for('gpuffi.run-notebook.value')] = value; }",
      arguments: [argument],
    });
    const holder = globalThis as unknown as Record<symbol, unknown>;
    const value = holder[resultKey];
    delete holder[resultKey];
    return { value };
  }
}

/** The kernel's error output (Deno 2.9): the error's name, message, and stack as the traceback. */
function errorOutput(error: unknown): ErrorOutput {
  const isError = error instanceof Error;
  const name = isError ? String(error.name) : "";
  const message = isError ? String(error.message) : String(error);
  let stack = isError ? String(error.stack ?? "") : "";
  // Frames below the cell are this runner's (the inspector call), which the kernel does not show.
  const lines = stack.split("\n");
  const runnerFrame = lines.findIndex((line) => /ext:deno_node\/inspector\.js|scripts\/run-notebook\.ts/.test(line));
  if (runnerFrame > 0) stack = lines.slice(0, runnerFrame).join("\n");
  return { output_type: "error", ename: name || "Error", evalue: message || "(none)", traceback: stack.split("\n") };
}

// Deno's swc behind Node's API (Node ≥ 22.13 has it too; the @types/node of this project is older).
const { stripTypeScriptTypes } = nodeModule as unknown as { stripTypeScriptTypes(code: string, options: { mode: "strip" | "transform" }): string };

/** A syntax error swc found, at its line of the cell. */
class CellSyntaxError extends SyntaxError {
  constructor(message: string, readonly line: number | undefined) {
    super(message);
    this.name = "SyntaxError";
  }
}

/** The cell's script: imports rewritten, types stripped, the kernel's prefix on its first line. */
function cellScript(source: string, base: string): string {
  const { code } = rewriteImports(source, resolveAgainst(base));
  let js: string;
  try {
    js = stripTypeScriptTypes(code, { mode: "strip" });
  } catch {
    // Strip mode keeps every position but refuses what needs code (enums, namespaces,
    // parameter properties); transform mode compiles those, and says where a syntax error is.
    try {
      js = stripTypeScriptTypes(code, { mode: "transform" });
    } catch (error) {
      const message = (error instanceof Error ? error.message : String(error)).replace(/^SyntaxError: /, "");
      const at = /\n\s*at file:\/\/\/stripTypeScriptTypes\.ts:(\d+):\d+\s*$/.exec(message);
      throw new CellSyntaxError(message.slice(0, at?.index), at ? Number(at[1]) : undefined);
    }
  }
  return `'use strict'; void 0;${js}`;
}

interface CellFailure {
  output: ErrorOutput;
  line?: number;
}

async function runCell(repl: ReplSession, source: string, base: string, count: number): Promise<CellFailure | undefined> {
  const attempt = async (text: string): Promise<EvaluateResult | CellFailure> => {
    let script: string;
    try {
      script = cellScript(text, base);
    } catch (error) {
      return { output: { ...errorOutput(error), traceback: `SyntaxError: ${(error as Error).message}`.split("\n") }, line: (error as CellSyntaxError).line };
    }
    return await repl.evaluate(script);
  };
  const wrapped = objectLiteralWrapping(source);
  let evaluated = await attempt(wrapped ?? source);
  if (wrapped !== undefined && ("output" in evaluated || evaluated.exceptionDetails)) evaluated = await attempt(source);
  if ("output" in evaluated) return evaluated;
  const { result, exceptionDetails } = evaluated;
  if (exceptionDetails) {
    const exception = exceptionDetails.exception ? (await repl.valueOf(exceptionDetails.exception)).value : exceptionDetails.text;
    // The outermost frame of a REPL script (they have no URL) is the statement of this cell that
    // failed; a syntax error has no frame of its own, only the position V8 reports.
    const frame = exceptionDetails.stackTrace?.callFrames.findLast((f) => f.url === "");
    const line = frame !== undefined ? frame.lineNumber + 1 : exception instanceof SyntaxError ? exceptionDetails.lineNumber + 1 : undefined;
    return { output: errorOutput(exception), line };
  }
  if (result.type === "undefined") return undefined;
  const { value } = await repl.valueOf(result);
  try {
    broadcast("execute_result", { execution_count: count, data: await format(value), metadata: {} });
  } catch (error) {
    // As the kernel: a value that cannot be formatted shows an error, and the run goes on.
    outputs?.push(errorOutput(error));
  }
  return undefined;
}

// --- the run -------------------------------------------------------------------------------------

function firstLine(source: string): string {
  const line = source.split("\n").find((l) => l.trim() !== "") ?? "";
  return line.length > 72 ? `${line.slice(0, 71)}…` : line;
}

// --- type-checking ------------------------------------------------------------------------------

/** The nearest deno.json above a directory (its compiler options, import map and node_modules). */
function denoConfig(directory: string): string | undefined {
  for (let dir = directory; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "deno.json"))) return join(dir, "deno.json");
    if (dirname(dir) === dir) return undefined;
  }
}

/**
 * `deno check` of the code cells joined into one module (static imports kept, their specifiers
 * made absolute), with every location in the report turned back into a cell and a line. A cell
 * that declares a name an earlier cell declared is an error here though the kernel allows it.
 */
async function checkNotebook(path: string, notebook: Notebook, base: string): Promise<number> {
  const cells = notebook.cells.filter((c) => c.cell_type === "code" && joinLines(c.source).trim() !== "");
  const starts: number[] = [];
  let module = "export {};\n";
  let line = 2;
  for (const cell of cells) {
    const { code } = rewriteImports(joinLines(cell.source), resolveAgainst(base), { keepStatic: true });
    starts.push(line);
    // The `;` line keeps a cell that starts with ( or [ from continuing the one before it.
    module += `${code}\n;\n`;
    line += code.split("\n").length + 1;
  }
  const dir = await Deno.makeTempDir({ prefix: "gpuffi-notebook-check-" });
  try {
    const file = join(dir, `${basename(path).replace(/\.ipynb$/, "")}.ts`);
    await Deno.writeTextFile(file, module);
    // The project's deno.json, with the unstable declarations added (Deno.jupyter is among them),
    // beside the module, with the project's node_modules.
    const projectConfig = denoConfig(dirname(path));
    const config = projectConfig === undefined ? {} : JSON.parse(await Deno.readTextFile(projectConfig)) as { compilerOptions?: { lib?: string[] } };
    config.compilerOptions = { ...config.compilerOptions, lib: [...(config.compilerOptions?.lib ?? ["deno.window"]), "deno.unstable"] };
    await Deno.writeTextFile(join(dir, "deno.json"), JSON.stringify(config));
    if (projectConfig !== undefined && existsSync(join(dirname(projectConfig), "node_modules"))) {
      await Deno.symlink(join(dirname(projectConfig), "node_modules"), join(dir, "node_modules"));
    }
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["check", "--config", join(dir, "deno.json"), file],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const where = (moduleLine: number) => {
      const index = starts.findLastIndex((start) => start <= moduleLine);
      return index < 0 ? `line ${moduleLine}` : `In [${index + 1}], line ${moduleLine - starts[index]! + 1}`;
    };
    const report = new TextDecoder().decode(new Uint8Array([...stdout, ...stderr]))
      .replaceAll(pathToFileURL(file).href, path)
      .replace(new RegExp(`${path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:(\\d+):(\\d+)`, "g"), (_, l: string, c: string) => `${path} ${where(Number(l))}:${c}`);
    const noise = /^(Check |Stack backtrace:|\s+\d+: <unknown>)/;
    console.log(report.split("\n").filter((l) => !noise.test(l)).join("\n").trimEnd());
    console.log(code === 0 ? `run-notebook: ${path}: ${cells.length} cells type-check` : `run-notebook: ${path}: type errors`);
    return code === 0 ? 0 : 1;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function main(): Promise<number> {
  const args = parseArguments(Deno.args);
  quiet = args.quiet;
  const text = await Deno.readTextFile(args.notebook);
  const notebook: Notebook = readNotebook(text, args.notebook);
  const directory = dirname(args.notebook);
  const base = pathToFileURL(`${directory}/`).href;
  if (args.check) return await checkNotebook(args.notebook, notebook, base);
  // The kernel runs in the notebook's directory (Jupyter starts it there).
  Deno.chdir(directory);
  (Deno as unknown as { jupyter: unknown }).jupyter = jupyterNamespace(broadcast);
  captureConsole();
  // The kernel prints these and goes on; a run that checks a notebook fails on them instead.
  const uncaught = (error: unknown, prefix: string) => {
    asyncError ??= errorOutput(error);
    stream("stderr", `${prefix} ${error instanceof Error ? error.stack : String(error)}\n`);
  };
  globalThis.addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    uncaught((event as Event & { reason: unknown }).reason, "Uncaught (in promise)");
  });
  globalThis.addEventListener("error", (event) => {
    event.preventDefault();
    uncaught((event as Event & { error: unknown }).error, "Uncaught");
  });

  const repl = new ReplSession();
  await repl.open();
  const codeCells = notebook.cells.filter((c) => c.cell_type === "code");
  let count = 0;
  let failure: { cell: number; line?: number; output: ErrorOutput; source: string } | undefined;
  const started = performance.now();
  for (const cell of codeCells) {
    const source = joinLines(cell.source);
    cell.outputs = [];
    cell.execution_count = null;
    // nbclient does not execute an empty cell, and it gets no execution count.
    if (failure !== undefined || source.trim() === "") continue;
    count++;
    cell.execution_count = count;
    note(`── In [${count}] ${firstLine(source)}`);
    outputs = cell.outputs;
    const cellStarted = performance.now();
    let cellFailure = await runCell(repl, source, base, count);
    // A rejection nobody awaited surfaces after the cell's own evaluation; give it a turn.
    await new Promise((r) => setTimeout(r, 0));
    if (cellFailure === undefined && asyncError !== undefined) cellFailure = { output: asyncError };
    if (cellFailure !== undefined) {
      cell.outputs.push(cellFailure.output);
      failure = { cell: count, line: cellFailure.line, output: cellFailure.output, source };
    }
    outputs = undefined;
    note(`   (${((performance.now() - cellStarted) / 1000).toFixed(2)} s)`);
  }
  notebook.metadata.language_info = {
    codemirror_mode: "typescript",
    file_extension: ".ts",
    mimetype: "text/x.typescript",
    name: "typescript",
    nbconvert_exporter: "script",
    pygments_lexer: "typescript",
    version: Deno.version.typescript,
  };
  if (args.out !== undefined) await Deno.writeTextFile(args.out, writeNotebookText(notebook));
  const total = `${count} cell${count === 1 ? "" : "s"} in ${((performance.now() - started) / 1000).toFixed(1)} s`;
  if (failure !== undefined) {
    const where = failure.line === undefined ? `In [${failure.cell}] failed` : `In [${failure.cell}] failed at line ${failure.line}`;
    const line = failure.line === undefined ? firstLine(failure.source) : failure.source.split("\n")[failure.line - 1]?.trim() ?? "";
    terminal.err(encoder.encode(
      `run-notebook: ${args.notebook}: ${where}: ${line}\n${failure.output.traceback.join("\n")}\n` +
        `stopped after ${total}${args.out === undefined ? "" : `; outputs so far written to ${args.out}`}\n`,
    ));
    return 1;
  }
  note(`run-notebook: ${total}${args.out === undefined ? "" : `, written to ${args.out}`}`);
  return 0;
}

// Timers and handles the cells left behind would keep the process alive; the kernel would keep
// them too, but a run is over when its last cell is.
Deno.exit(await main());
