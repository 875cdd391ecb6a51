/**
 * Request/response envelopes on one peer link (docs/protocol.md, "Requests"): ids, timeouts,
 * cancellation both ways, and errors that keep their catalogue code across the link.
 *
 * Outgoing: `request()` resolves with the peer's payload or rejects with a HearthError — the
 * peer's own error code, HEARTH_PEER_TIMEOUT, HEARTH_CANCELLED, or HEARTH_PEER_UNAVAILABLE
 * when the link goes away first. A request that gives up tells the peer (requestCancel).
 *
 * Incoming: each request runs its method's handler with an AbortSignal that fires on the
 * peer's cancel or at its deadline. Every request gets exactly one answer; a late handler
 * result after a cancel is dropped. Unknown methods get HEARTH_NOT_FOUND, excess concurrency
 * HEARTH_QUEUE_FULL; neither closes the link.
 */

import type { Logger } from "pino";
import { errors, HearthError } from "../../protocol/errors.js";
import type { PeerMessage, RequestCancelMessage, RequestMessage, ResponseErrorMessage, ResponseMessage } from "../../protocol/peer/messages.js";
import { PEER_WIRE_LIMITS } from "../../protocol/peer/messages.js";
import { PeerProtocolError } from "../../protocol/peer/peerError.js";
import { wireErrorPayload } from "./wire.js";

export interface RequestContext {
  peerNodeId: string;
  /** Fires when the requester cancels, its deadline passes, or the link closes. */
  signal: AbortSignal;
}

/** Returns the response payload (plain data), or throws a HearthError to answer with its code. */
export type RequestHandler = (payload: unknown, context: RequestContext) => unknown;

export interface RequestOptions {
  /** Defaults to PeerConfig.requestTimeoutMs. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface LinkRequestsInit {
  peerNodeId: string;
  /** Throws when the link is closed or the message cannot be encoded. */
  send: (message: PeerMessage) => void;
  handlerFor: (method: string) => RequestHandler | undefined;
  maxConcurrentRequests: number;
  defaultTimeoutMs: number;
  logger: Logger;
}

interface Outgoing {
  method: string;
  resolve: (payload: unknown) => void;
  reject: (error: HearthError) => void;
  cleanup: () => void;
}

interface Incoming {
  controller: AbortController;
  timer: NodeJS.Timeout | undefined;
}

function cancellationError(signal: AbortSignal): HearthError {
  return signal.reason instanceof HearthError ? signal.reason : errors.cancelled("the request was cancelled");
}

export class LinkRequests {
  readonly #init: LinkRequestsInit;
  #nextId = 1;
  readonly #outgoing = new Map<number, Outgoing>();
  readonly #incoming = new Map<number, Incoming>();
  #closedError: HearthError | undefined;

  constructor(init: LinkRequestsInit) {
    this.#init = init;
  }

  get inFlight(): { outgoing: number; incoming: number } {
    return { outgoing: this.#outgoing.size, incoming: this.#incoming.size };
  }

  request(method: string, payload: unknown, options: RequestOptions = {}): Promise<unknown> {
    if (this.#closedError !== undefined) return Promise.reject(this.#closedError);
    const { signal } = options;
    if (signal?.aborted === true) return Promise.reject(cancellationError(signal));
    const timeoutMs = Math.min(Math.max(1, Math.round(options.timeoutMs ?? this.#init.defaultTimeoutMs)), PEER_WIRE_LIMITS.maxTimeoutMs);
    const id = this.#nextId++;

    return new Promise<unknown>((resolve, reject) => {
      try {
        this.#init.send({ type: "request", id, method, payload, timeoutMs });
      } catch (error) {
        reject(HearthError.from(error, "HEARTH_PEER_UNAVAILABLE"));
        return;
      }
      const giveUp = (error: HearthError, reason: string): void => {
        if (!this.#outgoing.has(id)) return;
        this.#finishOutgoing(id);
        try {
          this.#init.send({ type: "requestCancel", id, reason });
        } catch {
          // The link is closing: the peer drops the request with it.
        }
        reject(error);
      };
      const timer = setTimeout(
        () => giveUp(errors.peerTimeout(`the peer did not answer ${method} within ${timeoutMs} ms`), "timed out"),
        timeoutMs,
      );
      const onAbort = (): void => giveUp(cancellationError(signal!), "cancelled");
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#outgoing.set(id, {
        method,
        resolve,
        reject,
        cleanup: () => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
        },
      });
    });
  }

  #finishOutgoing(id: number): Outgoing | undefined {
    const entry = this.#outgoing.get(id);
    if (entry === undefined) return undefined;
    this.#outgoing.delete(id);
    entry.cleanup();
    return entry;
  }

  /** A response for an unknown or abandoned id is ignored: it can race with a cancel. */
  onResponse(message: ResponseMessage): void {
    this.#finishOutgoing(message.id)?.resolve(message.payload);
  }

  onResponseError(message: ResponseErrorMessage): void {
    this.#finishOutgoing(message.id)?.reject(HearthError.fromPayload(message.error));
  }

  /** Returns the violation that must close the link, if any. */
  onRequest(message: RequestMessage): PeerProtocolError | undefined {
    const { id, method } = message;
    if (this.#incoming.has(id)) return new PeerProtocolError("HEARTH_PEER_PROTOCOL_VIOLATION", `request id ${id} reused while still in flight`);
    if (this.#closedError !== undefined) return undefined;
    const handler = this.#init.handlerFor(method);
    if (handler === undefined) {
      this.#sendError(id, errors.notFound(`this node has no handler for "${method}"`, { param: "method" }));
      return undefined;
    }
    if (this.#incoming.size >= this.#init.maxConcurrentRequests) {
      this.#sendError(id, errors.queueFull(`more than ${this.#init.maxConcurrentRequests} requests in flight from this peer`, { retryAfterSeconds: 1 }));
      return undefined;
    }
    const controller = new AbortController();
    const entry: Incoming = { controller, timer: undefined };
    if (message.timeoutMs !== undefined) {
      entry.timer = setTimeout(() => controller.abort(errors.peerTimeout(`the requester's ${message.timeoutMs} ms deadline passed`)), message.timeoutMs);
    }
    this.#incoming.set(id, entry);

    // Promise.resolve().then(): a handler that throws synchronously is answered like one that rejects.
    Promise.resolve()
      .then(() => handler(message.payload, { peerNodeId: this.#init.peerNodeId, signal: controller.signal }))
      .then(
        (payload) => this.#answer(id, entry, payload),
        (error: unknown) => this.#answerError(id, entry, method, error),
      );
    return undefined;
  }

  onCancel(message: RequestCancelMessage): void {
    const entry = this.#incoming.get(message.id);
    if (entry === undefined) return;
    const error = errors.cancelled(message.reason === undefined ? "cancelled by the requester" : `cancelled by the requester: ${message.reason}`);
    this.#finishIncoming(message.id, entry);
    entry.controller.abort(error);
    this.#sendError(message.id, error);
  }

  #finishIncoming(id: number, entry: Incoming): boolean {
    if (this.#incoming.get(id) !== entry) return false;
    this.#incoming.delete(id);
    clearTimeout(entry.timer);
    return true;
  }

  #answer(id: number, entry: Incoming, payload: unknown): void {
    if (!this.#finishIncoming(id, entry) || this.#closedError !== undefined) return;
    try {
      this.#init.send({ type: "response", id, payload });
    } catch (error) {
      // Most likely the payload is not plain data or too large: say so instead of going silent.
      this.#sendError(id, error);
    }
  }

  #answerError(id: number, entry: Incoming, method: string, error: unknown): void {
    if (!this.#finishIncoming(id, entry) || this.#closedError !== undefined) return;
    if (error instanceof HearthError) {
      this.#sendError(id, error);
      return;
    }
    // A bug in a handler: log it here, tell the peer only that it happened.
    this.#init.logger.error({ err: error, method }, "peer request handler failed");
    this.#sendError(id, errors.internal(`internal error while handling "${method}"`));
  }

  #sendError(id: number, error: unknown): void {
    try {
      this.#init.send({ type: "responseError", id, error: wireErrorPayload(error) });
    } catch {
      // The link is closing; the requester gets HEARTH_PEER_UNAVAILABLE on its side.
    }
  }

  /** The link closed: every outgoing request fails with `error`, every handler is aborted. */
  closeAll(error: HearthError): void {
    if (this.#closedError !== undefined) return;
    this.#closedError = error;
    for (const id of [...this.#outgoing.keys()]) this.#finishOutgoing(id)?.reject(error);
    for (const [id, entry] of [...this.#incoming]) {
      this.#finishIncoming(id, entry);
      entry.controller.abort(error);
    }
  }
}
