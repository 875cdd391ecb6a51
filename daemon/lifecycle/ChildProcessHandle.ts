/**
 * The daemon's one way of running a child process: a model runner (daemon/engine/RunnerProcess.ts),
 * an rpc-server worker (daemon/rpc/RpcWorker.ts) or the GPU probe (daemon/hardware/ResourceProbe.ts).
 *
 *   start    fork (a Node entry, with IPC) or spawn (a native binary); a spawn that fails
 *            shows as an exit, never as a throw
 *   ready    whenReady() races the caller's own readiness check against the child's exit and a
 *            deadline, so no caller waits forever on a child that died or hangs
 *   IPC      send() and onMessage(); with IPC, the exit is reported only once the channel has
 *            delivered what it still holds (a runner's last result or failure reason), or
 *            after a short grace
 *   output   stdout and stderr lines go to onOutput (native code prints there before abort())
 *   exit     `exited` resolves once, with whether the exit was asked for
 *   stop     ask politely (an IPC message or SIGTERM), SIGKILL after a deadline; kill() at once
 *
 * A child in its own process group (`ownProcessGroup`) is not signalled by Ctrl-C at the
 * daemon's terminal, so the daemon decides when it stops (it drains first); signals then go
 * to the whole group, so nothing the child started outlives it.
 */

import { fork, spawn, type ChildProcess, type Serializable } from "node:child_process";
import { createInterface } from "node:readline";

export type ChildCommand =
  | { kind: "fork"; entry: string; execArgv?: readonly string[]; serialization: "advanced" | "json" }
  | { kind: "spawn"; file: string; args: readonly string[]; cwd?: string };

export interface ChildSpec {
  command: ChildCommand;
  /** The whole environment of the child; defaults to the daemon's. */
  env?: NodeJS.ProcessEnv;
  ownProcessGroup: boolean;
  /** Which of stdout and stderr to read as lines (the rest is ignored). */
  output: { stdout: boolean; stderr: boolean };
  onOutput?: (line: string, stream: "stdout" | "stderr") => void;
}

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** True when the exit followed stop() or kill(), false for a crash. */
  expected: boolean;
}

/** After a child with IPC exits, how long its channel may take to deliver what it still holds. */
const EXIT_MESSAGES_GRACE_MS = 1_000;

export function describeExit(exit: Pick<ChildExit, "code" | "signal">): string {
  return exit.signal !== null ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
}

export class ChildProcessHandle {
  readonly exited: Promise<ChildExit>;
  readonly #child: ChildProcess | undefined;
  readonly #ownProcessGroup: boolean;
  #exit: ChildExit | undefined;
  #spawnError: Error | undefined;
  #expectingExit = false;
  #resolveExited!: (exit: ChildExit) => void;
  #stopping: Promise<ChildExit> | undefined;

  constructor(spec: ChildSpec) {
    this.#ownProcessGroup = spec.ownProcessGroup;
    this.exited = new Promise((resolve) => {
      this.#resolveExited = resolve;
    });
    const stdio = [
      "ignore",
      spec.output.stdout ? "pipe" : "ignore",
      spec.output.stderr ? "pipe" : "ignore",
      ...(spec.command.kind === "fork" ? ["ipc" as const] : []),
    ] as const;
    let child: ChildProcess;
    try {
      child =
        spec.command.kind === "fork"
          ? fork(spec.command.entry, [], {
              serialization: spec.command.serialization,
              stdio: [...stdio],
              execArgv: [...(spec.command.execArgv ?? [])],
              env: spec.env ?? process.env,
              detached: spec.ownProcessGroup,
            })
          : spawn(spec.command.file, [...spec.command.args], { cwd: spec.command.cwd, env: spec.env ?? process.env, stdio: [...stdio], detached: spec.ownProcessGroup });
    } catch (error) {
      this.#spawnError = error instanceof Error ? error : new Error(String(error));
      // Never started is not a crash.
      this.#expectingExit = true;
      this.#finish(null, null);
      return;
    }
    this.#child = child;
    for (const [stream, name] of [
      [child.stdout, "stdout"],
      [child.stderr, "stderr"],
    ] as const) {
      if (!stream) continue;
      createInterface({ input: stream, crlfDelay: Infinity }).on("line", (line) => spec.onOutput?.(line, name));
    }
    child.on("error", (error) => {
      this.#spawnError ??= error;
      // A process that never started emits no "exit", and it did not crash.
      if (child.pid === undefined) {
        this.#expectingExit = true;
        this.#finish(null, null);
      }
    });
    child.on("exit", (code, signal) => {
      // "exit" can overtake the child's last IPC messages; they are all read once the channel ends.
      if (!child.connected) return this.#finish(code, signal);
      const grace = setTimeout(() => this.#finish(code, signal), EXIT_MESSAGES_GRACE_MS);
      child.once("disconnect", () => {
        clearTimeout(grace);
        this.#finish(code, signal);
      });
    });
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Why the process could not be started, when it could not. */
  get spawnError(): Error | undefined {
    return this.#spawnError;
  }

  /** Set once the process is gone. */
  get exit(): ChildExit | undefined {
    return this.#exit;
  }

  get alive(): boolean {
    return this.#child?.pid !== undefined && this.#exit === undefined;
  }

  /** Sends over IPC; false when the channel is gone (the child is dying; its exit reports the rest). */
  send(message: Serializable, onError?: (error: Error) => void): boolean {
    const child = this.#child;
    if (!child?.connected) return false;
    child.send(message, (error) => {
      if (error) onError?.(error);
    });
    return true;
  }

  onMessage(listener: (message: unknown) => void): void {
    this.#child?.on("message", listener);
  }

  /**
   * Resolves with what `check` resolves with, unless the child exits or `timeoutMs` passes
   * first: then it rejects with a sentence saying which (the caller wraps it in its own error).
   * On a timeout the child is killed.
   */
  whenReady<T>(timeoutMs: number, check: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const controller = new AbortController();
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        controller.abort();
        this.kill();
        reject(new Error(`not ready within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        controller.abort();
      };
      void this.exited.then((exit) => {
        done();
        reject(new Error(this.#spawnError !== undefined ? `could not start: ${this.#spawnError.message}` : describeExit(exit)));
      });
      check(controller.signal).then(
        (value) => {
          done();
          resolve(value);
        },
        (error: unknown) => {
          done();
          reject(error instanceof Error ? error : new Error(String(error)));
        },
      );
    });
  }

  /**
   * Asks the child to stop (`ask`, e.g. an IPC "shutdown"; SIGTERM when absent) and SIGKILLs
   * it after `deadlineMs`. Resolves once it is gone. Safe to call repeatedly.
   */
  stop(deadlineMs: number, ask?: () => void, onDeadline?: () => void): Promise<ChildExit> {
    this.#stopping ??= (async () => {
      if (this.#exit !== undefined) return this.#exit;
      this.#expectingExit = true;
      if (ask !== undefined) ask();
      else this.#signal("SIGTERM");
      const timer = setTimeout(() => {
        onDeadline?.();
        this.#signal("SIGKILL");
      }, deadlineMs);
      const exit = await this.exited;
      clearTimeout(timer);
      return exit;
    })();
    return this.#stopping;
  }

  /** SIGKILL now; the exit counts as expected. */
  kill(): void {
    this.#expectingExit = true;
    this.#signal("SIGKILL");
  }

  #signal(signal: NodeJS.Signals): void {
    const child = this.#child;
    if (child?.pid === undefined || this.#exit !== undefined || child.exitCode !== null || child.signalCode !== null) return;
    try {
      if (this.#ownProcessGroup) process.kill(-child.pid, signal);
      else child.kill(signal);
    } catch {
      // Already gone (ESRCH): its "exit" event is on the way.
    }
  }

  #finish(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.#exit !== undefined) return;
    const exit: ChildExit = { code, signal, expected: this.#expectingExit };
    this.#exit = exit;
    this.#resolveExited(exit);
  }
}
