/**
 * A streaming-aware HTTP client inside one node's namespace (fixtures/routing-client.ts, which
 * prints one JSON event per line: the response head, each SSE event, the body, a purposeful
 * disconnect, the end), and the helpers that read its events. Shared by the cluster tests that
 * need more than the agent's whole-body answers: watching a stream, cutting it mid-way.
 */

import type { ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { HTTP_PORT, clusterFixture, type ClusterNode } from "./clusterNet.js";

export interface ClientEvent {
  event: "response" | "sse" | "body" | "disconnected" | "end" | "error";
  status?: number;
  headers?: Record<string, string>;
  data?: unknown;
  body?: unknown;
  error?: string;
}

export interface ClientRequest {
  method?: string;
  path: string;
  body?: unknown;
  headers?: Record<string, string>;
  /** The client drops the connection after this many SSE events (a client going away). */
  disconnectAfterEvents?: number;
}

export interface ClientAnswer {
  status: number;
  headers: Record<string, string>;
  body: unknown;
  events: ClientEvent[];
}

/** One request made in `node`'s namespace, observed event by event. */
export class ClientRun {
  readonly events: ClientEvent[] = [];
  /** Resolves with every event once the client process has exited. */
  readonly done: Promise<ClientEvent[]>;
  readonly #child: ChildProcess;
  readonly #diagnostics: () => string;
  #waiters: Array<() => void> = [];

  /** `diagnostics` is appended to a timeout's error (e.g. the nodes' last log lines). */
  constructor(node: ClusterNode, request: ClientRequest, diagnostics: () => string = () => "") {
    this.#diagnostics = diagnostics;
    this.#child = node.host.spawn(process.execPath, [clusterFixture("routing-client.js"), String(HTTP_PORT), JSON.stringify({ method: "POST", ...request })], { stdio: ["ignore", "pipe", "pipe"] });
    createInterface({ input: this.#child.stdout! }).on("line", (line) => {
      try {
        this.events.push(JSON.parse(line) as ClientEvent);
      } catch {
        return;
      }
      this.#wake();
    });
    this.done = new Promise((resolve) => this.#child.once("exit", () => resolve(this.events)));
    void this.done.then(() => this.#wake());
  }

  /** Resolves once an event satisfies `predicate`; throws (with the events so far) on timeout or exit. */
  async waitFor(predicate: (event: ClientEvent) => boolean, timeoutMs: number, what: string): Promise<ClientEvent> {
    let found: ClientEvent | undefined;
    await this.#until(() => (found = this.events.find(predicate)) !== undefined, timeoutMs, what);
    return found!;
  }

  /** Resolves once `count` SSE events have arrived. */
  waitForSse(count: number, timeoutMs: number): Promise<void> {
    return this.#until(() => sseData(this.events).length >= count, timeoutMs, `${count} SSE events`);
  }

  async #until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline || this.#child.exitCode !== null) {
        throw new Error(`client: no ${what} within ${timeoutMs} ms; events: ${JSON.stringify(this.events).slice(0, 2_000)}\n${this.#diagnostics()}`);
      }
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
  }

  #wake(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }
}

/** The response head and body among a finished run's events; throws when there was no response. */
export function answerOf(events: ClientEvent[], diagnostics: () => string = () => ""): ClientAnswer {
  const response = events.find((event) => event.event === "response");
  if (!response) throw new Error(`no response: ${JSON.stringify(events)}\n${diagnostics()}`);
  return { status: response.status!, headers: response.headers ?? {}, body: events.find((event) => event.event === "body")?.body, events };
}

/** The data of every SSE event, in order ("[DONE]" included). */
export function sseData(events: readonly ClientEvent[]): unknown[] {
  return events.filter((event) => event.event === "sse").map((event) => event.data);
}
