/**
 * `hearth serve`: runs the daemon in the foreground until SIGTERM/SIGINT.
 *
 * The whole configuration (file, env, flags, API key, bind safety) is validated before the
 * logger, any directory, socket or runner exists, so a bad config exits 2 having touched
 * nothing. Heavy modules (node-llama-cpp via the engine) are imported only here, which keeps
 * the other commands quick to start.
 */

import type { Command } from "commander";
import { loadConfig, type ConfigFlags } from "../../daemon/config/loadConfig.js";
import { assertSafeToServe } from "../../daemon/config/security.js";
import { createLogging } from "../../daemon/log.js";
import { hearthVersion } from "../../daemon/lifecycle/version.js";
import { installProcessLifecycle } from "../../daemon/lifecycle/processLifecycle.js";
import { exitCodeFor, printError } from "../output.js";

interface ServeOptions extends ConfigFlags {
  config?: string;
}

export function registerServeCommand(program: Command): void {
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
    .action(serve);
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

async function serve(options: ServeOptions): Promise<void> {
  const { config: configFile, peer, mdns, ...rest } = options;
  // commander defaults --no-mdns's value to true; only an explicit --no-mdns may override the file.
  const flags: ConfigFlags = { ...rest, ...(peer !== undefined && peer.length > 0 ? { peer } : {}), ...(mdns === false ? { mdns: false } : {}) };
  const loaded = await loadConfig({ flags, ...(configFile === undefined ? {} : { configFile }) });
  const { config } = loaded;
  assertSafeToServe(config);

  const logging = createLogging({ level: config.log.level, pretty: config.log.pretty });
  const { logger } = logging;
  for (const warning of loaded.warnings) logger.warn(warning);
  logger.info({ configPath: loaded.configPath ?? null, apiKeySource: loaded.apiKeySource ?? null, host: config.host, port: config.port }, "configuration loaded");

  // Imported late: it pulls in the engine and node-llama-cpp, which only serve needs.
  const { Daemon } = await import("../../daemon/Daemon.js");
  const daemon = new Daemon({ config, logger, version: hearthVersion() });
  // Installed before start() so a signal during startup still stops what was started.
  const lifecycle = installProcessLifecycle({ logger, shutdown: () => daemon.stop(), flush: () => logging.flush(), flushSync: () => logging.flushSync() });
  try {
    await daemon.start();
  } catch (error) {
    // Daemon.start() has already stopped whatever it had built.
    lifecycle.dispose();
    logger.error({ err: error }, "hearth could not start");
    await logging.flush();
    printError(error);
    process.exit(exitCodeFor(error));
  }
}
