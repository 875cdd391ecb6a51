#!/usr/bin/env node
/**
 * Entry point of the `hearth` executable (package.json "bin"). Everything lives in
 * cli/program.ts; this file only runs it and sets the exit code.
 *
 * `hearth serve` keeps running after its command resolves (the HTTP server holds the event
 * loop) and exits through its signal handlers; every other command ends here.
 */

import { runCli } from "./program.js";

const code = await runCli(process.argv);
process.exitCode = code;
