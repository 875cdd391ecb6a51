/**
 * A pino logger whose JSON lines are kept in memory, so tests can assert on what a component
 * logged (runner token accounting, refusals, redaction) instead of parsing process output.
 */

import { Writable } from "node:stream";
import { pino, type Logger } from "pino";

export interface LogEntry {
  level: number;
  msg?: string;
  component?: string;
  [key: string]: unknown;
}

export function captureLogs(level: pino.LevelWithSilent = "debug"): { logger: Logger; entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString("utf8").split("\n")) if (line.trim() !== "") entries.push(JSON.parse(line) as LogEntry);
      callback();
    },
  });
  return { logger: pino({ level }, sink), entries };
}
