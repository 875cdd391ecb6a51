/**
 * Static peers: the `--peer host:port` entries (and the config file's list), for networks that
 * drop multicast. They go through the same PeerDiscovery interface as mDNS, so the link manager
 * dials both the same way.
 *
 * Each entry becomes one `peerSeen` with source "static" and no node id: who listens there is
 * only known once the handshake has run. Entries are configuration, not observations, so they
 * are never lost; the link manager keeps redialling them with backoff. Events fire after
 * start() returns (on the next turn of the event loop), so a listener added right after
 * `await start()` still hears them.
 */

import type { Logger } from "pino";
import type { DiscoveredPeer, PeerAddress, PeerDiscovery, StaticDiscoveredPeer } from "./PeerDiscovery.js";
import { DiscoveryEmitter } from "./PeerDiscovery.js";
import { parseStaticPeers } from "./staticPeerEntry.js";

export interface StaticPeersComponents {
  logger: Logger;
}

export interface StaticPeersInit {
  /** Entries as typed (`host:port`, `[v6]:port`, `host`); validated in the constructor. */
  peers: readonly string[];
  /** Port for entries that name none (the default peer port). */
  defaultPort: number;
  /** Setting name used in error messages. Default "peers". */
  param?: string;
}

export class StaticPeers extends DiscoveryEmitter implements PeerDiscovery {
  readonly source = "static" as const;
  readonly #addresses: readonly PeerAddress[];
  #announcing: NodeJS.Immediate | undefined;
  #started = false;

  /** Throws HearthError HEARTH_CONFIG_INVALID naming the first bad entry. */
  constructor(components: StaticPeersComponents, init: StaticPeersInit) {
    super(components.logger.child({ component: "discovery", source: "static" }));
    this.#addresses = parseStaticPeers(init.peers, init.defaultPort, init.param);
  }

  start(): Promise<void> {
    if (this.#started) return Promise.resolve();
    this.#started = true;
    if (this.#addresses.length > 0) this.logger.info({ peers: this.#addresses.length }, "static peers configured");
    this.#announcing = setImmediate(() => {
      this.#announcing = undefined;
      for (const peer of this.peers()) this.notify("peerSeen", peer);
    });
    return Promise.resolve();
  }

  stop(): Promise<void> {
    if (this.#announcing !== undefined) clearImmediate(this.#announcing);
    this.#announcing = undefined;
    this.#started = false;
    return Promise.resolve();
  }

  /** The configured entries, started or not (for `hearth doctor`). */
  configured(): PeerAddress[] {
    return this.#addresses.map((address) => ({ ...address }));
  }

  peers(): DiscoveredPeer[] {
    if (!this.#started) return [];
    return this.#addresses.map(
      (address): StaticDiscoveredPeer => ({ source: "static", nodeId: undefined, fingerprint: undefined, protocolVersion: undefined, addresses: [{ ...address }] }),
    );
  }
}
