/**
 * What the daemon process does on signals and on errors nobody caught.
 *
 * SIGTERM/SIGINT: graceful shutdown, then exit 0 (1 if the shutdown itself failed).
 * A second signal while that runs: exit at once with 128 + the signal number, for the
 * operator who does not want to wait for the drain.
 * uncaughtException/unhandledRejection: log, flush and exit 1. A daemon in an unknown state
 * must not limp on holding runners and sockets; a supervisor restarts it clean. Bad input
 * never gets here: it is answered with a HearthError where it arrives.
 *
 * Runner children notice the daemon is gone through their IPC channel closing and exit on
 * their own, which covers the forced and fatal exits that skip the graceful stop.
 */

import type { Logger } from "pino";

export interface ProcessLifecycleOptions {
  logger: Logger;
  /** Graceful shutdown of everything the process runs. */
  shutdown: () => Promise<void>;
  /** Waits until every log line is written. */
  flush: () => Promise<void>;
  /** Best effort synchronous flush, just before a forced exit. */
  flushSync: () => void;
  /** Replaced in tests; process.exit otherwise. */
  exit?: (code: number) => void;
  /** The process to attach to; the real one unless testing. */
  target?: NodeJS.EventEmitter;
}

export interface ProcessLifecycle {
  /** Starts the graceful shutdown as a signal would; returns the exit code it will use. */
  shutdown(reason: string): Promise<number>;
  /** Removes the handlers (after an exit path has been chosen elsewhere). */
  dispose(): void;
}

const SIGNAL_NUMBERS = { SIGINT: 2, SIGTERM: 15 } as const;
type HandledSignal = keyof typeof SIGNAL_NUMBERS;

export function installProcessLifecycle(options: ProcessLifecycleOptions): ProcessLifecycle {
  const logger = options.logger.child({ component: "lifecycle" });
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const target = options.target ?? process;
  let shuttingDown: Promise<number> | undefined;
  let exited = false;

  const exitOnce = (code: number) => {
    if (exited) return;
    exited = true;
    exit(code);
  };

  const shutdown = (reason: string): Promise<number> => {
    shuttingDown ??= (async () => {
      logger.info({ reason }, "shutting down (send the signal again to force)");
      let code = 0;
      try {
        await options.shutdown();
      } catch (error) {
        logger.error({ err: error }, "shutdown failed");
        code = 1;
      }
      await options.flush();
      return code;
    })();
    return shuttingDown;
  };

  const onSignal = (signal: HandledSignal) => {
    if (shuttingDown) {
      logger.warn({ signal }, "second signal: forcing exit without waiting for the shutdown");
      options.flushSync();
      exitOnce(128 + SIGNAL_NUMBERS[signal]);
      return;
    }
    void shutdown(signal).then(exitOnce);
  };
  const onSigint = () => onSignal("SIGINT");
  const onSigterm = () => onSignal("SIGTERM");

  const onFatal = (kind: string) => (error: unknown) => {
    try {
      logger.fatal({ err: error, kind }, "fatal: the daemon is in an unknown state and exits");
    } finally {
      options.flushSync();
      exitOnce(1);
    }
  };
  const onUncaught = onFatal("uncaughtException");
  const onRejection = onFatal("unhandledRejection");

  target.on("SIGINT", onSigint);
  target.on("SIGTERM", onSigterm);
  target.on("uncaughtException", onUncaught);
  target.on("unhandledRejection", onRejection);

  return {
    shutdown,
    dispose: () => {
      target.off("SIGINT", onSigint);
      target.off("SIGTERM", onSigterm);
      target.off("uncaughtException", onUncaught);
      target.off("unhandledRejection", onRejection);
    },
  };
}
