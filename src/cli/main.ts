// The `gpuffi` command line: dispatches to one module per subcommand. Usage errors exit with 2,
// gpuffi's typed errors and file-system errors with 1, both printed without a stack trace.
import process from "node:process";
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { GpuffiError } from "../ffi/errors.ts";
import { type CliIO, type Command, UsageError } from "./command.ts";
import { ggufCommand } from "./gguf-inspect.ts";
import { safetensorsCommand } from "./safetensors-inspect.ts";
import { makeTinyModelCommand } from "./make-tiny-model.ts";
import { makeTinyLoraCommand } from "./make-tiny-lora.ts";
import { doctorCommand } from "./doctor.ts";
import { topCommand } from "./top.ts";
import { tokenizeCommand } from "./tokenize.ts";
import { generateCommand } from "./generate.ts";
import { loraCommand } from "./lora.ts";
import { uploadCommand } from "./upload.ts";

const commands: readonly Command[] = [
  doctorCommand,
  topCommand,
  generateCommand,
  tokenizeCommand,
  loraCommand,
  uploadCommand,
  ggufCommand,
  safetensorsCommand,
  makeTinyModelCommand,
  makeTinyLoraCommand,
];

const usage = `usage: gpuffi COMMAND [ARGS] (gpuffi COMMAND --help for details)

commands:
${commands.map((c) => `  ${c.synopsis}\n      ${c.summary}`).join("\n")}`;

const stdio: CliIO = {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
};

/** An error from the operating system (missing file, permission denied, ...). */
function isSystemError(error: unknown): error is Error & { code: string } {
  return error instanceof Error && typeof (error as { code?: unknown }).code === "string" && !(error instanceof GpuffiError);
}

/** Runs the CLI with `argv` (the arguments after the program name) and returns the exit code. */
export async function main(argv: string[], io: CliIO = stdio): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    (name === undefined ? io.err : io.out)(usage);
    return name === undefined ? 2 : 0;
  }
  const command = commands.find((c) => c.name === name);
  if (command === undefined) {
    io.err(`gpuffi: unknown command "${name}"\n\n${usage}`);
    return 2;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    io.out(command.usage);
    return 0;
  }
  try {
    return await command.run(rest, io);
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`gpuffi ${name}: ${error.message}\n\n${command.usage}`);
      return 2;
    }
    if (error instanceof GpuffiError || isSystemError(error)) {
      io.err(`gpuffi ${name}: ${error.message}`);
      return 1;
    }
    throw error;
  }
}

function isEntryPoint(): boolean {
  const meta = import.meta as ImportMeta & { main?: boolean };
  if (meta.main !== undefined) return meta.main;
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) process.exitCode = await main(process.argv.slice(2));
