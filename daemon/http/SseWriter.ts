/**
 * Server-sent events framing for streamed completions.
 *
 * Frames are `data: <json>\n\n`, preceded by `event: <name>\n` for families that name their
 * events (Responses, Anthropic). OpenAI's streams end with `data: [DONE]\n\n` (`doneMarker`),
 * and a failure after the stream began is one error frame before a clean end (the status line is long
 * gone by then). While nothing else is written for `keepAliveMs` (a queued request, a model
 * loading), a `: keepalive` comment keeps proxies and clients from timing out; clients ignore
 * comments.
 *
 * The response is committed lazily: headers go out (and are flushed at once) with the first
 * frame or the first keepalive. Until then a failure can still be answered with a proper
 * status code, so queue-full (429) or a failed load (503) reach the client as real HTTP errors.
 */

import type { ServerResponse } from "node:http";
import type { StreamFrame } from "../../protocol/generationStream.js";
import { canWrite } from "./responses.js";
import type { StreamWriter } from "./streamWriters.js";

export const SSE_HEADERS = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache",
  connection: "keep-alive",
  // Tells nginx-style proxies not to buffer the stream.
  "x-accel-buffering": "no",
} as const;

export function formatDataFrame(data: unknown, event?: string): string {
  const name = event === undefined ? "" : `event: ${event}\n`;
  return `${name}data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`;
}

export const DONE_FRAME = "data: [DONE]\n\n";
export const KEEPALIVE_FRAME = ": keepalive\n\n";

export class SseWriter implements StreamWriter {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly res: ServerResponse,
    private readonly keepAliveMs: number,
    private readonly options: { doneMarker: boolean } = { doneMarker: true },
  ) {}

  /** Whether the status line and headers are out (errors can no longer change the status). */
  get started(): boolean {
    return this.res.headersSent;
  }

  /** Starts the keepalive clock; call once the request is accepted and begins to wait. */
  startKeepAlive(): void {
    if (this.timer !== undefined || !(this.keepAliveMs > 0)) return;
    this.timer = setTimeout(() => this.onKeepAlive(), this.keepAliveMs);
    this.timer.unref();
  }

  send(frame: StreamFrame): void {
    this.write(formatDataFrame(frame.data, frame.event));
  }

  /** Ends a successful stream. */
  done(): void {
    if (this.options.doneMarker) this.write(DONE_FRAME);
    this.end();
  }

  /** Ends a stream that failed after it began. */
  fail(frame: StreamFrame): void {
    this.write(formatDataFrame(frame.data, frame.event));
    this.end();
  }

  /** Stops the keepalive clock without writing anything (the response is answered otherwise). */
  dispose(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private onKeepAlive(): void {
    if (!canWrite(this.res)) return this.dispose();
    this.write(KEEPALIVE_FRAME);
  }

  private commit(): void {
    if (this.res.headersSent) return;
    this.res.writeHead(200, SSE_HEADERS);
    this.res.flushHeaders();
  }

  private write(frame: string): void {
    if (!canWrite(this.res)) return;
    this.commit();
    this.res.write(frame);
    // Any frame proves liveness; the next keepalive is due a full period after it.
    this.timer?.refresh();
  }

  private end(): void {
    this.dispose();
    if (canWrite(this.res)) this.res.end();
  }
}
