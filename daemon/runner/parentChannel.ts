/**
 * The runner's side of the IPC channel to the daemon: typed sends and log forwarding.
 *
 * A runner never writes to stdout or stderr itself; everything it has to say, logs included,
 * goes to the daemon as messages, which then reach the daemon's pino logger with the
 * runner's model id attached.
 */

import type { RunnerLogLevel, RunnerToDaemon } from "../../protocol/runnerIpc.js";

export interface RunnerLog {
  (level: RunnerLogLevel, message: string, fields?: Record<string, unknown>): void;
}

export interface ParentChannel {
  send(message: RunnerToDaemon): void;
  /** Sends and resolves once the message left the process (or the channel is gone). */
  flush(message: RunnerToDaemon): Promise<void>;
  log: RunnerLog;
}

export function createParentChannel(): ParentChannel {
  const send = (message: RunnerToDaemon): void => {
    if (!process.send || !process.connected) return;
    // A send can only fail when the daemon is gone; the "disconnect" handler exits then.
    process.send(message, undefined, {}, () => undefined);
  };
  const flush = (message: RunnerToDaemon): Promise<void> =>
    new Promise((resolve) => {
      if (!process.send || !process.connected) return resolve();
      process.send(message, undefined, {}, () => resolve());
    });
  const log: RunnerLog = (level, message, fields) => {
    send(fields === undefined ? { type: "log", level, message } : { type: "log", level, message, fields });
  };
  return { send, flush, log };
}
