/**
 * The one polling wait of the tests, and small liveness checks shared by the process-level
 * tests.
 *
 *   waitFor(condition, timeoutMs, what)       until `condition` holds; resolves to the ms waited
 *   waitForValue(probe, timeoutMs, what)      until `probe` returns a value (not undefined or
 *                                             false); resolves to that value
 *
 * Both throw `timed out after N ms waiting for <what>` on timeout. An error thrown by the
 * condition or probe ends the wait with that error (so a probe can fail fast, e.g. when the
 * process it watches exited), unless `retryErrors` is set: then it counts as "not yet" and
 * the last one is named in the timeout's message (a daemon that is briefly not answering).
 */

import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

export interface WaitPacing {
  /** Pause between two polls; default 10 ms. */
  intervalMs?: number;
  /** Treat a throwing probe as "not yet" instead of failing the wait. */
  retryErrors?: boolean;
}

const DEFAULT_INTERVAL_MS = 10;

function pacingOf(pacing: number | WaitPacing | undefined): Required<WaitPacing> {
  if (typeof pacing === "number") return { intervalMs: pacing, retryErrors: false };
  return { intervalMs: pacing?.intervalMs ?? DEFAULT_INTERVAL_MS, retryErrors: pacing?.retryErrors ?? false };
}

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : JSON.stringify(error);
}

/**
 * Polls `probe` until it returns something other than undefined or false, and resolves to it.
 * Throws naming `what` (and the probe's last error, with `retryErrors`) after `timeoutMs`.
 */
export async function waitForValue<T>(
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs: number,
  what: string,
  pacing?: number | WaitPacing,
): Promise<T> {
  const { intervalMs, retryErrors } = pacingOf(pacing);
  const deadline = performance.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      if (!retryErrors) throw error;
      lastError = error;
    }
    if (performance.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError === undefined ? "" : ` (last error: ${describeError(lastError)})`}`);
    }
    await sleep(intervalMs);
  }
}

/** Polls `condition` until it holds; resolves to the milliseconds waited. Throws naming `what` after `timeoutMs`. */
export async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string, pacing?: number | WaitPacing): Promise<number> {
  const started = performance.now();
  await waitForValue(async () => (await condition()) || undefined, timeoutMs, what, pacing);
  return performance.now() - started;
}

/** Whether a process with this pid exists (signal 0 only checks). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export async function isListening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}
