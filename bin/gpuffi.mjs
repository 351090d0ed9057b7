#!/usr/bin/env node
// The `gpuffi` command for installed packages: Node runs the compiled CLI from dist/.
// (In a checkout: `npm run gpuffi -- ARGS`, or `bun src/cli/main.ts ARGS`.)
import { main } from "../dist/cli/main.js";

process.exitCode = await main(process.argv.slice(2));
