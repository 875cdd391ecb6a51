/**
 * The `hearth` command line: commands, usage errors and exit codes.
 *
 * Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error, 3 daemon unreachable
 * (cli/output.ts). Commander's own usage errors are reported in the same
 * `error [CODE]: message` form as HearthErrors, so scripts see one format.
 *
 * What acts on this machine rather than through a daemon comes in as a LocalMachine
 * (cli/localMachine.ts), handed over by cli/main.ts.
 */

import { Command, CommanderError } from "commander";
import { registerClusterCommand } from "./commands/cluster.js";
import { registerDoctorCommand } from "./commands/doctor.js";
import { registerJobsCommand } from "./commands/jobs.js";
import { registerModelsCommand } from "./commands/models.js";
import { registerPeersCommand } from "./commands/peers.js";
import { registerPlanCommand } from "./commands/plan.js";
import { registerPullCommand } from "./commands/pull.js";
import { registerRunCommand } from "./commands/run.js";
import { registerServeCommand } from "./commands/serve.js";
import { registerStatusCommand } from "./commands/status.js";
import { registerSubmitCommand } from "./commands/submit.js";
import { registerSynthCommand } from "./commands/synth.js";
import type { LocalMachine } from "./localMachine.js";
import { EXIT_OK, EXIT_USAGE, exitCodeFor, printError } from "./output.js";

export function buildProgram(machine: LocalMachine): Command {
  const program = new Command("hearth")
    .description("Run one LLM across the two or three machines in a home or office.")
    .version(machine.version(), "-V, --version", "print the version")
    .helpOption("-h, --help", "show help")
    .showHelpAfterError("(add --help for usage)")
    // Settings above are copied into each subcommand when it is created, so set them first.
    .exitOverride()
    .configureOutput({
      outputError: (text, write) => write(text.replace(/^error: /, "error [HEARTH_CLI_USAGE]: ")),
    });
  program.addHelpText("after", "\nExit codes: 0 ok, 1 failure, 2 usage, config or join-token error, 3 daemon unreachable, 130 interrupted.");

  registerServeCommand(program, machine);
  registerRunCommand(program, machine);
  registerModelsCommand(program, machine);
  registerPullCommand(program, machine);
  registerStatusCommand(program, machine);
  registerPlanCommand(program, machine);
  registerSynthCommand(program, machine);
  registerClusterCommand(program, machine);
  registerPeersCommand(program, machine);
  registerDoctorCommand(program, machine);
  registerSubmitCommand(program, machine);
  registerJobsCommand(program, machine);
  return program;
}

/** Parses argv and runs the command; resolves to the exit code. */
export async function runCli(argv: readonly string[], machine: LocalMachine): Promise<number> {
  const program = buildProgram(machine);
  try {
    await program.parseAsync([...argv]);
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    printError(error);
    return exitCodeFor(error);
  }
  return typeof process.exitCode === "number" ? process.exitCode : EXIT_OK;
}
