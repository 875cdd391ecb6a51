/**
 * The daemon's logger: pino JSON lines on stdout, pretty-printed for a human at a terminal.
 *
 * Components get `logger.child({component: "..."})`. Secrets are redacted by path, so a
 * request's Authorization header or a config object that holds the API key can be logged
 * without leaking it. JSON output is written asynchronously; `flush()` (on shutdown) and
 * `flushSync()` (on a fatal error, just before exiting) make sure the last lines land.
 */

import { pino, type DestinationStream, type Logger } from "pino";
import pinoPretty from "pino-pretty";
import type { LogConfig } from "./config/defaults.js";

/** Redacted wherever they appear in a log object (one level of wildcard nesting). */
export const REDACTED_PATHS = [
  "authorization",
  "headers.authorization",
  'headers["x-api-key"]',
  "req.headers.authorization",
  'req.headers["x-api-key"]',
  "*.headers.authorization",
  "*.authorization",
  "apiKey",
  "*.apiKey",
  "api_key",
  "*.api_key",
  "config.apiKey",
];

export const REDACTED = "[redacted]";

export interface LoggingOptions {
  level: LogConfig["level"];
  /** Undefined: pretty when stdout is a TTY. */
  pretty?: boolean | undefined;
  /** Where lines go instead of stdout (tests). */
  destination?: DestinationStream;
}

export interface Logging {
  logger: Logger;
  /** Resolves once every line logged so far has been written. */
  flush(): Promise<void>;
  /** Best effort synchronous flush, for the moments just before process.exit. */
  flushSync(): void;
}

const FLUSH_TIMEOUT_MS = 2000;

export function createLogging(options: LoggingOptions): Logging {
  const pretty = options.pretty ?? process.stdout.isTTY;
  let syncFlushable: { flushSync(): void } | undefined;
  let destination: DestinationStream;
  if (options.destination) {
    destination = options.destination;
  } else if (pretty) {
    // Synchronous so nothing is lost at exit; a human reading a terminal is the bottleneck anyway.
    destination = pinoPretty({ colorize: process.stdout.isTTY, sync: true, destination: 1, ignore: "pid,hostname", translateTime: "SYS:HH:MM:ss.l", singleLine: true });
  } else {
    const boom = pino.destination({ dest: 1, sync: false });
    // Without a listener a closed stdout (the log reader went away: EPIPE) would be an
    // uncaught error and take the daemon down; serving matters more than its log lines.
    boom.on("error", () => undefined);
    syncFlushable = boom;
    destination = boom;
  }
  const logger = pino(
    {
      level: options.level,
      redact: { paths: REDACTED_PATHS, censor: REDACTED },
    },
    destination,
  );
  return {
    logger,
    flush: () =>
      new Promise<void>((resolve) => {
        // A stuck stdout (e.g. a closed pipe) must not hold shutdown hostage.
        const timer = setTimeout(resolve, FLUSH_TIMEOUT_MS);
        timer.unref();
        try {
          logger.flush(() => {
            clearTimeout(timer);
            resolve();
          });
        } catch {
          clearTimeout(timer);
          resolve();
        }
      }),
    flushSync: () => {
      try {
        syncFlushable?.flushSync();
      } catch {
        // The fd may be closed or busy; the exit path must go on regardless.
      }
    },
  };
}

/**
 * A logger for CLI commands that use daemon parts in-process (e.g. the model registry in
 * `hearth models`): human-readable lines on stderr, so stdout stays clean for output.
 */
export function createCliLogger(level: LogConfig["level"] = "warn"): Logger {
  const destination = pinoPretty({ colorize: process.stderr.isTTY, sync: true, destination: 2, ignore: "pid,hostname,time", singleLine: true });
  return pino({ level, redact: { paths: REDACTED_PATHS, censor: REDACTED } }, destination);
}
