/**
 * How the commands in this folder read this machine's configuration: the CLI names the file
 * and the environment and hears about warnings, which are reported before the command goes
 * on, as `hearth serve` logs them before it starts.
 */

import { loadConfig, type ConfigFlags } from "../config/loadConfig.js";
import type { HearthConfig } from "../config/defaults.js";

/** The CLI's ConfigChoice (cli/localMachine.ts), as this side reads it. */
export interface ConfigChoice {
  configFile?: string | undefined;
  env?: NodeJS.ProcessEnv;
  onWarning?: (warning: string) => void;
}

export async function configFor(choice: ConfigChoice, flags: ConfigFlags = {}): Promise<HearthConfig> {
  const loaded = await loadConfig({
    flags,
    ...(choice.configFile === undefined ? {} : { configFile: choice.configFile }),
    ...(choice.env === undefined ? {} : { env: choice.env }),
  });
  for (const warning of loaded.warnings) choice.onWarning?.(warning);
  return loaded.config;
}
