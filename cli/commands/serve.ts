/**
 * `hearth serve`: runs the daemon in the foreground until SIGTERM/SIGINT.
 *
 * This machine runs it (LocalMachine.serve, cli/localMachine.ts): the whole configuration
 * is validated before the logger, any directory, socket or runner exists, so a bad config
 * exits 2 having touched nothing. Heavy modules (node-llama-cpp via the engine) are loaded
 * only then, which keeps the other commands quick to start.
 */

import type { Command } from "commander";
import type { LocalMachine, ServeFlags } from "../localMachine.js";
import { exitCodeFor, printError } from "../output.js";

interface ServeOptions extends ServeFlags {
  config?: string;
}

export function registerServeCommand(program: Command, machine: LocalMachine): void {
  program
    .command("serve")
    .description("run the Hearth daemon in the foreground")
    .option("--host <host>", "address to bind (default: 127.0.0.1; anything else needs an API key)")
    .option("--port <port>", "port to bind (default: 4327)")
    .option("--models-dir <dir>", "directory of .gguf models (default: <data-dir>/models)")
    .option("--data-dir <dir>", "state directory (default: $XDG_DATA_HOME/hearth)")
    .option("--config <file>", "config file (default: $XDG_CONFIG_HOME/hearth/config.toml)")
    .option("--api-key-file <file>", "file holding the API key clients must send")
    .option("--log-level <level>", "trace, debug, info, warn, error, fatal or silent (default: info)")
    .option("--parallel <n>", "requests one model serves at once (default: 4)")
    .option("--keep-alive <duration>", 'idle time before a model is unloaded, e.g. "5m" (default: 5m)')
    .option("--peer <host:port>", "a peer to dial besides those mDNS finds (repeatable; for networks that drop multicast)", collect, [] as string[])
    .option("--peer-port <port>", "port of the peer listener (default: 4328; 0 picks a free one)")
    .option("--peer-bind <address>", "address the peer listener binds to (default: 0.0.0.0)")
    .option("--no-mdns", "neither advertise nor browse _hearth._tcp on the LAN")
    .action((options: ServeOptions) => serve(machine, options));
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

async function serve(machine: LocalMachine, options: ServeOptions): Promise<void> {
  const { config: configFile, peer, mdns, ...rest } = options;
  // commander defaults --no-mdns's value to true; only an explicit --no-mdns may override the file.
  const flags: ServeFlags = { ...rest, ...(peer !== undefined && peer.length > 0 ? { peer } : {}), ...(mdns === false ? { mdns: false } : {}) };
  try {
    await machine.serve({ ...flags, configFile });
  } catch (error) {
    // Whatever the daemon started is stopped by now; exiting at once means nothing left
    // behind (a loaded module's handle, a timer) can keep the process up.
    printError(error);
    process.exit(exitCodeFor(error));
  }
}
