#!/usr/bin/env node
/**
 * Entry point of the `hearth` executable (package.json "bin"). Everything lives in
 * cli/program.ts; this file runs it with the commands that act on this machine
 * (daemon/commands/) and sets the exit code. It is the one file of cli/ that imports from
 * daemon/ (eslint.layers.js), and so the place where the compiler checks that those commands
 * are the LocalMachine the CLI asks for.
 *
 * `hearth serve` keeps running after its command resolves (the HTTP server holds the event
 * loop) and exits through its signal handlers; every other command ends here.
 */

import { localMachine } from "../daemon/commands/index.js";
import type { LocalMachine } from "./localMachine.js";
import { runCli } from "./program.js";

const machine: LocalMachine = localMachine;
const code = await runCli(process.argv, machine);
process.exitCode = code;
