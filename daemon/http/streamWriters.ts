/**
 * The transports of a streamed answer: server-sent events (OpenAI, Responses, Anthropic) and
 * newline-delimited JSON (Ollama), behind one interface so a generation is streamed the same
 * way whatever the API family.
 */

import type { ServerResponse } from "node:http";
import type { StreamFrame } from "../../protocol/generationStream.js";
import { canWrite } from "./responses.js";
import { SseWriter } from "./SseWriter.js";

export interface StreamWriter {
  /** Whether the status line and headers are out (errors can no longer change the status). */
  readonly started: boolean;
  /** Starts the keepalive clock, where the transport has one; call once the request begins to wait. */
  startKeepAlive(): void;
  send(frame: StreamFrame): void;
  /** Ends a successful stream. */
  done(): void;
  /** Ends a stream that failed after it began, with the family's error frame. */
  fail(frame: StreamFrame): void;
  /** Stops timers without writing anything (the response is answered otherwise). */
  dispose(): void;
}

export type StreamTransport =
  /** SSE ending with `data: [DONE]` (OpenAI Chat Completions and Completions). */
  | { kind: "sse"; doneMarker: boolean }
  /** One JSON object per line, the last one says it is done (Ollama). */
  | { kind: "ndjson" };

export function openStream(res: ServerResponse, transport: StreamTransport, keepAliveMs: number): StreamWriter {
  return transport.kind === "sse" ? new SseWriter(res, keepAliveMs, { doneMarker: transport.doneMarker }) : new NdjsonWriter(res);
}

export const NDJSON_HEADERS = {
  "content-type": "application/x-ndjson",
  "cache-control": "no-cache",
  "x-accel-buffering": "no",
} as const;

/**
 * NDJSON framing. Ollama's stream has no comment lines, so it has no keepalive: a client
 * waiting for a loading model sees nothing until the first line, as with Ollama itself.
 * Like the SSE writer it commits lazily, so errors before the first line keep their status.
 */
export class NdjsonWriter implements StreamWriter {
  constructor(private readonly res: ServerResponse) {}

  get started(): boolean {
    return this.res.headersSent;
  }

  startKeepAlive(): void {}

  send(frame: StreamFrame): void {
    this.write(`${JSON.stringify(frame.data)}\n`);
  }

  done(): void {
    if (canWrite(this.res)) this.res.end();
  }

  fail(frame: StreamFrame): void {
    this.send(frame);
    this.done();
  }

  dispose(): void {}

  private write(line: string): void {
    if (!canWrite(this.res)) return;
    if (!this.res.headersSent) {
      this.res.writeHead(200, NDJSON_HEADERS);
      this.res.flushHeaders();
    }
    this.res.write(line);
  }
}
