/**
 * Option parsers and option groups shared by the CLI commands.
 *
 * Parsers throw commander's InvalidArgumentError, so a bad value is reported by commander
 * like any other usage error (exit 2) before a command runs.
 */

import { InvalidArgumentError, type Command } from "commander";

export function parsePositiveInt(text: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(value) || value <= 0) throw new InvalidArgumentError("expected a positive integer.");
  return value;
}

export function parseInteger(text: string): number {
  const value = Number(text);
  if (!/^-?\d+$/.test(text.trim()) || !Number.isSafeInteger(value)) throw new InvalidArgumentError("expected an integer.");
  return value;
}

export function parseTemperature(text: string): number {
  const value = Number(text);
  if (text.trim() === "" || !Number.isFinite(value) || value < 0 || value > 2) throw new InvalidArgumentError("expected a number from 0 to 2.");
  return value;
}

/** Options of the commands that talk to a running daemon. */
export interface ClientCommandOptions {
  url?: string;
  config?: string;
  json?: boolean;
}

export function addClientOptions(command: Command): Command {
  return command
    .option("--url <url>", "daemon URL (default: HEARTH_URL, else host and port from the config file)")
    .option("--config <file>", "config file (default: $XDG_CONFIG_HOME/hearth/config.toml)");
}
