/**
 * `hearth serve`: runs the daemon in this process until SIGTERM/SIGINT.
 *
 * The whole configuration (file, env, flags, API key, bind safety) is validated before the
 * logger, any directory, socket or runner exists, so a bad config stops it having touched
 * nothing. The daemon (and with it the engine and node-llama-cpp) is imported only here,
 * which keeps the other commands quick to start.
 */

import { loadConfig, type ConfigFlags } from "../config/loadConfig.js";
import { assertSafeToServe } from "../config/security.js";
import { installProcessLifecycle } from "../lifecycle/processLifecycle.js";
import { hearthVersion } from "../lifecycle/version.js";
import { createLogging } from "../log.js";

export async function serve(options: ConfigFlags & { configFile?: string | undefined }): Promise<void> {
  const { configFile, ...flags } = options;
  const loaded = await loadConfig({ flags, ...(configFile === undefined ? {} : { configFile }) });
  const { config } = loaded;
  assertSafeToServe(config);

  const logging = createLogging({ level: config.log.level, pretty: config.log.pretty });
  const { logger } = logging;
  for (const warning of loaded.warnings) logger.warn(warning);
  logger.info({ configPath: loaded.configPath ?? null, apiKeySource: loaded.apiKeySource ?? null, host: config.host, port: config.port }, "configuration loaded");

  const { Daemon } = await import("../Daemon.js");
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
    throw error;
  }
}
