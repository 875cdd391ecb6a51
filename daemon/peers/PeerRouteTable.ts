/**
 * What this node answers on its peer links, by message type: one handler per request method
 * and one per stream purpose. The services that serve peers (routing, model sharing, layer
 * splitting) declare their routes as plain values (`peerRoutes`); the daemon's composition
 * (daemon/Daemon.ts) puts them in one table before the links start, and the table is frozen
 * then, so what a peer can reach is fixed and visible in one place. Every link looks handlers
 * up here (PeerLink's PeerLinkHandlers); an unknown method or purpose is refused by the link.
 */

import { errors } from "../../protocol/errors.js";
import type { RequestHandler } from "./linkRequests.js";
import type { StreamHandler } from "./linkStreams.js";
import type { PeerLinkHandlers } from "./PeerLink.js";

/** A service's routes: method -> handler, purpose -> handler. */
export interface PeerRoutes {
  requests?: Readonly<Record<string, RequestHandler>>;
  streams?: Readonly<Record<string, StreamHandler>>;
}

export class PeerRouteTable implements PeerLinkHandlers {
  readonly #requests = new Map<string, RequestHandler>();
  readonly #streams = new Map<string, StreamHandler>();
  #frozen = false;

  /** Adds a service's routes. A method or purpose two services serve is a wiring bug. */
  serve(routes: PeerRoutes): this {
    for (const [method, handler] of Object.entries(routes.requests ?? {})) this.#add(this.#requests, `request method ${method}`, method, handler, false);
    for (const [purpose, handler] of Object.entries(routes.streams ?? {})) this.#add(this.#streams, `stream purpose ${purpose}`, purpose, handler, false);
    return this;
  }

  /** Sets one request route, replacing an earlier one (tests and tools). */
  handleRequest(method: string, handler: RequestHandler): void {
    this.#add(this.#requests, `request method ${method}`, method, handler, true);
  }

  /** Sets one stream route, replacing an earlier one (tests and tools). */
  handleStream(purpose: string, handler: StreamHandler): void {
    this.#add(this.#streams, `stream purpose ${purpose}`, purpose, handler, true);
  }

  /** No route may be added after this (the links are about to start). */
  freeze(): void {
    this.#frozen = true;
  }

  request(method: string): RequestHandler | undefined {
    return this.#requests.get(method);
  }

  stream(purpose: string): StreamHandler | undefined {
    return this.#streams.get(purpose);
  }

  /** Every route, for docs and tests. */
  list(): { requests: string[]; streams: string[] } {
    return { requests: [...this.#requests.keys()].sort(), streams: [...this.#streams.keys()].sort() };
  }

  #add<T>(map: Map<string, T>, what: string, key: string, handler: T, replace: boolean): void {
    if (this.#frozen) throw errors.internal(`the peer route table is frozen; cannot add ${what}`);
    if (!replace && map.has(key)) throw errors.internal(`${what} is served twice`);
    map.set(key, handler);
  }
}
