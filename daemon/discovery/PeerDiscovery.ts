/**
 * The one interface every way of finding peers implements (mDNS, static `--peer` entries),
 * and the events they share.
 *
 * Discovery only produces hints: where a peer might be listening and who it claims to be.
 * Nothing here is trusted; the peer-link handshake proves identity and membership. So a
 * `peerSeen` means "worth dialling", and a `peerLost` means "no longer advertised", never
 * "the link is down" (links have their own heartbeats).
 *
 * Listeners cannot hurt the service that emits: a listener that throws or rejects is logged
 * and the remaining listeners still run (DiscoveryEmitter.notify).
 */

import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import type { ProtocolVersion } from "../../protocol/peer/version.js";

export interface PeerAddress {
  readonly host: string;
  readonly port: number;
}

export type DiscoverySource = "mdns" | "static";

/** A peer advertised on the LAN: its TXT record named who it is. */
export interface MdnsDiscoveredPeer {
  readonly source: "mdns";
  readonly nodeId: string;
  /** SHA-256 of its TLS certificate, lower-case hex; the link manager pins it when dialling. */
  readonly fingerprint: string;
  readonly protocolVersion: ProtocolVersion;
  /** Best first: the address its mDNS answers came from, then the other addresses it advertised. */
  readonly addresses: readonly PeerAddress[];
}

/** A configured `--peer host:port`: who answers there is only known after the handshake. */
export interface StaticDiscoveredPeer {
  readonly source: "static";
  readonly nodeId: undefined;
  readonly fingerprint: undefined;
  readonly protocolVersion: undefined;
  /** Exactly one: the configured entry. The host may be a name, resolved when dialling. */
  readonly addresses: readonly PeerAddress[];
}

export type DiscoveredPeer = MdnsDiscoveredPeer | StaticDiscoveredPeer;

export interface PeerDiscoveryEvents {
  /** A new peer, or new facts about one (addresses, protocol version). Safe to act on again. */
  peerSeen: [peer: DiscoveredPeer];
  /** A peer with a known node id is no longer advertised (goodbye or expiry). */
  peerLost: [nodeId: string];
}

/**
 * js-libp2p-style service: construct with components and init, then start()/stop().
 * Both are idempotent; start() after stop() starts afresh; no event fires after stop().
 */
export interface PeerDiscovery extends EventEmitter<PeerDiscoveryEvents> {
  readonly source: DiscoverySource;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** What is currently known, as the last peerSeen for each peer said (for `hearth doctor`, late subscribers). */
  peers(): DiscoveredPeer[];
}

/** Shared base: event plumbing that no listener can break. */
export abstract class DiscoveryEmitter extends EventEmitter<PeerDiscoveryEvents> {
  protected readonly logger: Logger;

  protected constructor(logger: Logger) {
    super();
    this.logger = logger;
  }

  /**
   * Calls every listener in turn. A listener's throw or rejection is logged and does not
   * reach the caller (a socket handler or timer) nor stop the other listeners.
   */
  protected notify<K extends keyof PeerDiscoveryEvents>(event: K, ...args: PeerDiscoveryEvents[K]): void {
    // rawListeners, not listeners: calling the wrapper of a once() listener removes it.
    const listeners = this.rawListeners(event) as unknown as ((...values: unknown[]) => unknown)[];
    for (const listener of listeners) {
      try {
        const result = Reflect.apply(listener, this, args);
        if (result instanceof Promise) {
          result.catch((error: unknown) => this.logger.warn({ err: error, event }, "discovery listener rejected"));
        }
      } catch (error) {
        this.logger.warn({ err: error, event }, "discovery listener threw");
      }
    }
  }
}
