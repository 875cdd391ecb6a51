/**
 * `hearth models`: the models this machine has, read locally from the configured models dir
 * and extra paths through the same registry the daemon uses. Works without a daemon.
 */

import type { Command } from "commander";
import type { LocalMachine, LocalModel } from "../localMachine.js";
import { formatBytes, formatCount, formatTable, printJson } from "../output.js";

interface ModelsOptions {
  json?: boolean;
  config?: string;
  modelsDir?: string;
}

export function registerModelsCommand(program: Command, machine: LocalMachine): void {
  program
    .command("models")
    .description("list the models in the models dir (no daemon needed)")
    .option("--json", "print a JSON array for scripts")
    .option("--models-dir <dir>", "models directory (default: from the config file)")
    .option("--config <file>", "config file (default: $XDG_CONFIG_HOME/hearth/config.toml)")
    .action((options: ModelsOptions) => listModels(machine, options));
}

async function listModels(machine: LocalMachine, options: ModelsOptions): Promise<void> {
  const { modelsDir, models } = await machine.models.list({
    configFile: options.config,
    modelsDir: options.modelsDir,
    onWarning: (warning) => process.stderr.write(`warning: ${warning}\n`),
  });
  if (options.json) {
    printJson(models);
    return;
  }
  if (models.length === 0) {
    process.stderr.write(`no models in ${modelsDir}; get one with: hearth pull hf:<user>/<repo>/<file>.gguf\n`);
    return;
  }
  process.stdout.write(formatTable(["ID", "SIZE", "ARCH", "PARAMS", "QUANT", "PATH"], models.map(modelRow)));
}

function modelRow(model: LocalModel): string[] {
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
