// Shared by the rendezvous tests: a port nothing listens on, and the command line that runs a
// .ts file on the runtime running the tests (for rank processes).
import { createServer } from "node:net";
import { scriptCommand } from "../../../src/ffi/index.ts";

/** A port that was free a moment ago on 127.0.0.1 (the OS picked it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

/** [executable, arguments] that run `script` with this runtime (src/ffi's scriptCommand). */
export function runtimeCommand(script: string): [string, string[]] {
  const { command, args } = scriptCommand(script);
  return [command, args];
}
