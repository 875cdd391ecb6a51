/**
 * `hearth models`: the models this machine has, read locally from the configured models dir
 * and extra paths through the same registry the daemon uses. Works without a daemon.
 */

import type { Command } from "commander";
import { loadConfig } from "../../daemon/config/loadConfig.js";
import type { ModelDescriptor } from "../../daemon/engine/types.js";
import { createCliLogger } from "../../daemon/log.js";
import { formatBytes, formatCount, formatTable, printJson } from "../output.js";

interface ModelsOptions {
  json?: boolean;
  config?: string;
  modelsDir?: string;
}

export function registerModelsCommand(program: Command): void {
  program
    .command("models")
    .description("list the models in the models dir (no daemon needed)")
    .option("--json", "print a JSON array for scripts")
    .option("--models-dir <dir>", "models directory (default: from the config file)")
    .option("--config <file>", "config file (default: $XDG_CONFIG_HOME/hearth/config.toml)")
    .action(listModels);
}

async function listModels(options: ModelsOptions): Promise<void> {
  const loaded = await loadConfig({
    ...(options.config === undefined ? {} : { configFile: options.config }),
    flags: options.modelsDir === undefined ? {} : { modelsDir: options.modelsDir },
  });
  for (const warning of loaded.warnings) process.stderr.write(`warning: ${warning}\n`);
  const { config } = loaded;
  const { ModelRegistry } = await import("../../daemon/models/ModelRegistry.js");
  const registry = new ModelRegistry({
    modelsDir: config.modelsDir,
    extraPaths: config.models.extraPaths,
    aliases: config.models.aliases,
    logger: createCliLogger(),
  });
  const models = await registry.list();
  if (options.json) {
    printJson(models);
    return;
  }
  if (models.length === 0) {
    process.stderr.write(`no models in ${config.modelsDir}; get one with: hearth pull hf:<user>/<repo>/<file>.gguf\n`);
    return;
  }
  process.stdout.write(formatTable(["ID", "SIZE", "ARCH", "PARAMS", "QUANT", "PATH"], models.map(modelRow)));
}

function modelRow(model: ModelDescriptor): string[] {
  const id = model.aliases.length > 0 ? `${model.id} (${model.aliases.join(", ")})` : model.id;
  return [
    id,
    formatBytes(model.sizeBytes),
    model.architecture ?? "?",
    model.parameterCount === undefined ? "?" : formatCount(model.parameterCount),
    model.quantization ?? "?",
    model.path,
  ];
}
