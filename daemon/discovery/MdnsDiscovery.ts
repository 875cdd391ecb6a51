/**
 * LAN discovery over mDNS / DNS-SD: advertises this node as `_hearth._tcp` on its peer port and
 * reports other Hearth nodes as they appear and disappear.
 *
 * - Publishing is bonjour-service's: the instance name and the SRV target are the node id, so
 *   nodes that share a host name (containers, namespaces, cloned images) never collide; probing
 *   is off because a name derived from a key pair cannot clash except with a copied identity.
 * - The TXT record holds only id, protocol version and fingerprint (mdnsTxt.ts); nothing about
 *   the cluster, so a LAN observer cannot learn membership.
 * - Browsing reads every mDNS response itself (mdnsRecords.ts): each answer from a live peer
 *   refreshes it. bonjour-service's Browser reports a service once, and its expire() uses the
 *   PTR record's TTL (8 hours), so it could not notice a peer that died without a goodbye.
 * - This node hears its own answers (multicast loopback, and on every interface it has), and
 *   peers advertise Docker and VPN addresses too: self is recognised by node id and addresses
 *   are filtered and ordered (peerAddresses.ts).
 * - A peer is lost on its goodbye, or when none of its addresses was heard for
 *   MDNS_PEER_EXPIRY_MS (PeerSightings.ts): three query rounds, so one or two lost UDP packets
 *   do not drop it.
 * - Everything received is untrusted: malformed answers are ignored with a debug log, work per
 *   packet and table size are capped, and no handler lets an exception escape.
 *
 * Lifecycle as js-libp2p services: construct with components and init, then start()/stop().
 * stop() sends goodbyes and closes the socket. If the mDNS socket cannot be opened, start()
 * still succeeds (static peers keep working) and status() says why mDNS is silent.
 */

import type { EventEmitter } from "node:events";
import { randomInt } from "node:crypto";
import { isIPv4 } from "node:net";
import Bonjour from "bonjour-service";
import type { Logger } from "pino";
import { errors } from "../../protocol/errors.js";
import { nodeIdFromFingerprint, shortNodeId } from "../../protocol/peer/identity.js";
import { PROTOCOL_VERSION, type ProtocolVersion } from "../../protocol/peer/version.js";
import type { InterfaceAddress } from "./interfaces.js";
import { listInterfaces, localAddressSet, normaliseIp } from "./interfaces.js";
import { readServiceResponse } from "./mdnsRecords.js";
import { encodeHearthTxt, parseHearthTxt } from "./mdnsTxt.js";
import { orderPeerAddresses } from "./peerAddresses.js";
import type { DiscoveredPeer, PeerDiscovery } from "./PeerDiscovery.js";
import { DiscoveryEmitter } from "./PeerDiscovery.js";
import { PeerSightings } from "./PeerSightings.js";

// ---- timings and caps (Syncthing style: announce, then forget after three missed rounds) ----

/** DNS-SD service name: `_hearth._tcp.local`. */
export const MDNS_SERVICE_TYPE = "hearth";
/** How often this node asks for `_hearth._tcp`; every live peer answers, which keeps it from expiring. */
export const MDNS_QUERY_INTERVAL_MS = 5_000;
/** Up to this much is added to each query interval, so nodes started together do not query in lockstep. */
export const MDNS_QUERY_JITTER_MS = 500;
/** Extra queries soon after start: the first is lost to nobody listening yet more often than later ones. */
export const MDNS_STARTUP_QUERY_DELAYS_MS: readonly number[] = [0, 1_000];
/** A peer none of whose addresses was heard for this long is lost (three query rounds). */
export const MDNS_PEER_EXPIRY_MS = 3 * MDNS_QUERY_INTERVAL_MS;
/** How often the table is checked for expired peers; bounds how late a loss is reported. */
export const MDNS_EXPIRY_SWEEP_INTERVAL_MS = 1_000;
/** How long stop() waits for the goodbye to be sent before closing the socket anyway. */
export const MDNS_GOODBYE_TIMEOUT_MS = 1_000;
/** Peers tracked at once; a home cluster has two or three, a hostile LAN could invent thousands. */
export const MDNS_MAX_PEERS = 64;
/** Addresses kept per peer. */
export const MDNS_MAX_ADDRESSES_PER_PEER = 8;
/** How much of an untrusted instance name a log line may carry. */
const LOG_NAME_LIMIT = 80;

const SERVICE_TYPE_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,13}[a-z0-9])?$/;

export interface MdnsTimings {
  queryIntervalMs: number;
  queryJitterMs: number;
  startupQueryDelaysMs: readonly number[];
  peerExpiryMs: number;
  expirySweepIntervalMs: number;
  goodbyeTimeoutMs: number;
}

export const DEFAULT_MDNS_TIMINGS: Readonly<MdnsTimings> = Object.freeze({
  queryIntervalMs: MDNS_QUERY_INTERVAL_MS,
  queryJitterMs: MDNS_QUERY_JITTER_MS,
  startupQueryDelaysMs: MDNS_STARTUP_QUERY_DELAYS_MS,
  peerExpiryMs: MDNS_PEER_EXPIRY_MS,
  expirySweepIntervalMs: MDNS_EXPIRY_SWEEP_INTERVAL_MS,
  goodbyeTimeoutMs: MDNS_GOODBYE_TIMEOUT_MS,
});

/** What discovery needs of the node identity (daemon/identity/NodeIdentity.ts has both). */
export interface DiscoveryIdentity {
  readonly nodeId: string;
  readonly fingerprint: Uint8Array;
}

export interface MdnsDiscoveryComponents {
  logger: Logger;
  identity: DiscoveryIdentity;
  /** Monotonic milliseconds. Default: performance.now. */
  now?: () => number;
  /** This machine's interfaces. Default: os.networkInterfaces(), classified. */
  interfaces?: () => InterfaceAddress[];
}

export interface MdnsDiscoveryInit {
  /** The peer-link port advertised in the SRV record. */
  port: number;
  /** Advertised in TXT. Default: PROTOCOL_VERSION. */
  protocolVersion?: ProtocolVersion;
  /** DNS-SD service name without underscores. Default "hearth"; tests use others to stay apart. */
  serviceType?: string;
  timings?: Partial<MdnsTimings>;
  maxPeers?: number;
  maxAddressesPerPeer?: number;
  /**
   * The multicast socket. `interface` pins sending and joining to one local IPv4 address (for a
   * machine whose default route is not the LAN the peers are on); `port` and `group` exist for
   * tests that must stay apart from real mDNS. Defaults: every interface, 5353, 224.0.0.251.
   */
  multicast?: { interface?: string; port?: number; group?: string };
}

export type MdnsDiscoveryState = "stopped" | "starting" | "running" | "stopping";

export interface MdnsDiscoveryStatus {
  state: MdnsDiscoveryState;
  /** Why the mDNS socket could not be opened, if it could not; discovery is then silent. */
  socketError: string | undefined;
  queriesSent: number;
  /** Responses that carried our service type, own ones included. */
  answersRead: number;
  /** Own answers heard back: the socket sends and receives. */
  ownAnswersHeard: number;
  /** Answers ignored as malformed, and the last reason. */
  answersIgnored: number;
  lastIgnoredReason: string | undefined;
  peers: number;
}

/** The part of multicast-dns that bonjour-service keeps private but a robust daemon needs. */
interface MulticastDns extends EventEmitter {
  query(query: unknown, callback: (error: Error | null) => void): void;
}

function multicastDnsOf(bonjour: Bonjour): MulticastDns {
  // bonjour-service neither listens for the socket's `error` event (an unhandled one would crash
  // the daemon) nor exposes raw responses; both live on its Server's multicast-dns instance.
  const mdns = (bonjour as unknown as { server?: { mdns?: unknown } }).server?.mdns as Partial<MulticastDns> | undefined;
  if (typeof mdns?.on !== "function" || typeof mdns.query !== "function" || typeof mdns.removeListener !== "function") {
    throw errors.internal("bonjour-service has no multicast-dns instance where this version expects one.");
  }
  return mdns as MulticastDns;
}

function positive(value: number, name: string): number {
  if (!Number.isFinite(value) || value <= 0) throw errors.configInvalid(`${name} must be a positive number of milliseconds, got ${value}.`, { param: name });
  return value;
}

/** multicast-dns here is IPv4 only: the interface is a local IPv4 address, the group an IPv4 multicast one. */
function validateMulticast(multicast: NonNullable<MdnsDiscoveryInit["multicast"]>): void {
  const refuse = (param: string, why: string): never => {
    throw errors.configInvalid(`multicast.${param} ${why}.`, { param: `multicast.${param}` });
  };
  if (multicast.interface !== undefined && !isIPv4(multicast.interface)) refuse("interface", "must be a local IPv4 address");
  if (multicast.group !== undefined && !(isIPv4(multicast.group) && Number(multicast.group.split(".")[0]) >= 224 && Number(multicast.group.split(".")[0]) <= 239)) {
    refuse("group", "must be an IPv4 multicast address (224.0.0.0-239.255.255.255)");
  }
  if (multicast.port !== undefined && !(Number.isInteger(multicast.port) && multicast.port >= 1 && multicast.port <= 65_535)) refuse("port", "must be 1-65535");
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function quoteName(name: string): string {
  return name.length > LOG_NAME_LIMIT ? `${name.slice(0, LOG_NAME_LIMIT)}...` : name;
}

export class MdnsDiscovery extends DiscoveryEmitter implements PeerDiscovery {
  readonly source = "mdns" as const;

  readonly #identity: DiscoveryIdentity;
  readonly #port: number;
  readonly #protocolVersion: ProtocolVersion;
  readonly #serviceType: string;
  readonly #serviceName: string;
  readonly #timings: MdnsTimings;
  readonly #maxAddressesPerPeer: number;
  readonly #multicast: { interface?: string; port?: number; group?: string };
  readonly #now: () => number;
  readonly #interfaces: () => InterfaceAddress[];
  readonly #sightings: PeerSightings;

  #state: MdnsDiscoveryState = "stopped";
  #transition: Promise<void> = Promise.resolve();
  #bonjour: Bonjour | undefined;
  #mdns: MulticastDns | undefined;
  #service: Bonjour.Service | undefined;
  #publishedSignature = "";
  #republishing = false;
  #queryTimers = new Set<NodeJS.Timeout>();
  #sweepTimer: NodeJS.Timeout | undefined;
  #localInterfaces: InterfaceAddress[] = [];
  #localAddresses = new Set<string>();
  #warnedIdentityClash = false;
  #status: Omit<MdnsDiscoveryStatus, "state" | "peers"> = {
    socketError: undefined,
    queriesSent: 0,
    answersRead: 0,
    ownAnswersHeard: 0,
    answersIgnored: 0,
    lastIgnoredReason: undefined,
  };

  constructor(components: MdnsDiscoveryComponents, init: MdnsDiscoveryInit) {
    super(components.logger.child({ component: "discovery", source: "mdns" }));
    const { identity } = components;
    if (nodeIdFromFingerprint(identity.fingerprint) !== identity.nodeId) {
      throw errors.identityInvalid("The node id does not match the certificate fingerprint it should be derived from.");
    }
    if (!Number.isInteger(init.port) || init.port < 1 || init.port > 65_535) {
      throw errors.configInvalid(`The advertised peer port must be 1-65535, got ${init.port}.`, { param: "peer.port" });
    }
    const serviceType = init.serviceType ?? MDNS_SERVICE_TYPE;
    if (!SERVICE_TYPE_PATTERN.test(serviceType)) {
      throw errors.configInvalid(`"${serviceType}" is not a DNS-SD service name (1-15 of a-z, 0-9, -).`, { param: "serviceType" });
    }
    const timings = { ...DEFAULT_MDNS_TIMINGS, ...init.timings };
    for (const key of ["queryIntervalMs", "peerExpiryMs", "expirySweepIntervalMs", "goodbyeTimeoutMs"] as const) positive(timings[key], key);
    if (!Number.isFinite(timings.queryJitterMs) || timings.queryJitterMs < 0) {
      throw errors.configInvalid(`queryJitterMs must be 0 or more milliseconds, got ${timings.queryJitterMs}.`, { param: "queryJitterMs" });
    }
    validateMulticast(init.multicast ?? {});

    this.#identity = identity;
    this.#port = init.port;
    this.#protocolVersion = init.protocolVersion ?? PROTOCOL_VERSION;
    this.#serviceType = serviceType;
    this.#serviceName = `_${serviceType}._tcp.local`;
    this.#timings = timings;
    this.#maxAddressesPerPeer = init.maxAddressesPerPeer ?? MDNS_MAX_ADDRESSES_PER_PEER;
    this.#multicast = { ...init.multicast };
    this.#now = components.now ?? (() => performance.now());
    this.#interfaces = components.interfaces ?? listInterfaces;
    this.#sightings = new PeerSightings({
      expiryMs: timings.peerExpiryMs,
      maxPeers: init.maxPeers ?? MDNS_MAX_PEERS,
      maxAddressesPerPeer: this.#maxAddressesPerPeer,
    });
  }

  get state(): MdnsDiscoveryState {
    return this.#state;
  }

  /** For `hearth doctor`: is the socket open, does anything answer, what was refused and why. */
  status(): MdnsDiscoveryStatus {
    return { state: this.#state, peers: this.#sightings.size, ...this.#status };
  }

  peers(): DiscoveredPeer[] {
    return this.#sightings.peers();
  }

  /** Idempotent. Resolves once the socket is bound (or failed to bind: see status()). */
  start(): Promise<void> {
    return this.#serially(() => this.#start());
  }

  /** Idempotent. Sends goodbyes, then closes the socket; no event fires afterwards. */
  stop(): Promise<void> {
    return this.#serially(() => this.#stop());
  }

  #serially(step: () => Promise<void>): Promise<void> {
    const run = this.#transition.then(step, step);
    this.#transition = run.catch(() => undefined);
    return run;
  }

  async #start(): Promise<void> {
    if (this.#state !== "stopped") return;
    this.#state = "starting";
    this.#status.socketError = undefined;
    this.#refreshLocalInterfaces();

    const { interface: multicastInterface, port, group } = this.#multicast;
    // multicast-dns binds to `interface` when one is given, and on Linux a socket bound to a
    // unicast address receives no multicast; so bind to any and only pin the interface.
    const socketOptions = {
      ...(multicastInterface === undefined ? {} : { interface: multicastInterface, bind: "0.0.0.0" }),
      ...(port === undefined ? {} : { port }),
      ...(group === undefined ? {} : { ip: group }),
    };
    // bonjour-service hands these options to multicast-dns. Its default for a failed answer is
    // to throw from a socket callback, hence the error callback.
    const bonjour = new Bonjour(socketOptions, (error: unknown) => {
      this.logger.debug({ err: error }, "mDNS answer could not be sent");
    });
    const mdns = multicastDnsOf(bonjour);
    this.#bonjour = bonjour;
    this.#mdns = mdns;
    const ready = new Promise<void>((resolve) => {
      mdns.once("ready", () => resolve());
      mdns.once("error", () => resolve());
    });
    mdns.on("error", this.#onSocketError);
    mdns.on("warning", this.#onSocketWarning);
    mdns.on("response", this.#onResponse);
    await ready;
    if (this.#status.socketError !== undefined) {
      this.logger.warn({ reason: this.#status.socketError }, "mDNS unavailable; only static peers will be found");
    }

    this.#publish();
    this.#state = "running";
    this.#scheduleStartupQueries();
    this.#sweepTimer = setInterval(this.#sweep, this.#timings.expirySweepIntervalMs);
    this.#sweepTimer.unref();
    this.logger.info(
      { service: this.#serviceName, port: this.#port, instance: shortNodeId(this.#identity.nodeId), multicastInterface: multicastInterface ?? "all" },
      "mDNS discovery started",
    );
  }

  async #stop(): Promise<void> {
    if (this.#state !== "running") return;
    this.#state = "stopping";
    for (const timer of this.#queryTimers) clearTimeout(timer);
    this.#queryTimers.clear();
    clearInterval(this.#sweepTimer);
    this.#sweepTimer = undefined;
    const bonjour = this.#bonjour;
    const mdns = this.#mdns;
    mdns?.removeListener("response", this.#onResponse);

    if (bonjour !== undefined) {
      await this.#withTimeout((done) => bonjour.unpublishAll(done), "goodbye");
      await this.#withTimeout((done) => bonjour.destroy(done), "socket close");
    }
    // The error listener stays: a late socket error after close must still find one.
    this.#bonjour = undefined;
    this.#mdns = undefined;
    this.#service = undefined;
    this.#republishing = false;
    this.#sightings.clear();
    this.#state = "stopped";
    this.logger.info("mDNS discovery stopped");
  }

  /** Runs a callback-style bonjour step, giving up after the goodbye timeout so stop() always ends. */
  #withTimeout(step: (done: () => void) => void, what: string): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.logger.debug({ step: what }, "mDNS shutdown step timed out");
        resolve();
      }, this.#timings.goodbyeTimeoutMs);
      timer.unref();
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      try {
        step(done);
      } catch (error) {
        this.logger.debug({ err: error, step: what }, "mDNS shutdown step failed");
        done();
      }
    });
  }

  #publish(): void {
    const bonjour = this.#bonjour;
    if (bonjour === undefined) return;
    const nodeId = this.#identity.nodeId;
    try {
      const service = bonjour.publish({
        name: nodeId,
        type: this.#serviceType,
        protocol: "tcp",
        port: this.#port,
        // The SRV target names the A/AAAA records; a shared host name would let one node's
        // addresses stand for another's in any cache on the LAN.
        host: `${nodeId.toLowerCase()}.local`,
        txt: encodeHearthTxt({ nodeId, fingerprint: this.#identity.fingerprint, protocolVersion: this.#protocolVersion }),
        probe: false,
      });
      service.on("error", (error: unknown) => this.logger.warn({ err: error }, "mDNS service error"));
      this.#service = service;
      this.#publishedSignature = this.#addressSignature();
    } catch (error) {
      this.logger.warn({ err: error }, "mDNS service could not be published");
    }
  }

  /**
   * bonjour-service computes its A/AAAA records once, at publish. When this machine's addresses
   * change (DHCP, Wi-Fi roaming) it would keep advertising the old ones, so publish afresh.
   */
  #republishIfAddressesChanged(): void {
    const service = this.#service;
    if (this.#republishing || service === undefined || this.#addressSignature() === this.#publishedSignature) return;
    this.#republishing = true;
    this.logger.info("local addresses changed; re-announcing");
    const stopOld = service.stop as (callback: () => void) => void;
    stopOld(() => {
      this.#republishing = false;
      if (this.#state === "running") this.#publish();
    });
  }

  #addressSignature(): string {
    return this.#localInterfaces
      .filter((entry) => entry.kind !== "loopback")
      .map((entry) => entry.address)
      .sort()
      .join(",");
  }

  #refreshLocalInterfaces(): void {
    try {
      this.#localInterfaces = this.#interfaces();
    } catch (error) {
      this.logger.debug({ err: error }, "could not list network interfaces");
    }
    this.#localAddresses = localAddressSet(this.#localInterfaces);
  }

  #scheduleStartupQueries(): void {
    for (const delay of this.#timings.startupQueryDelaysMs) this.#after(delay, () => this.#query());
    const last = Math.max(0, ...this.#timings.startupQueryDelaysMs);
    const periodic = (): void => {
      this.#query();
      this.#after(this.#nextInterval(), periodic);
    };
    this.#after(last + this.#nextInterval(), periodic);
  }

  #nextInterval(): number {
    const jitter = Math.floor(this.#timings.queryJitterMs);
    return this.#timings.queryIntervalMs + (jitter > 0 ? randomInt(jitter + 1) : 0);
  }

  #after(delayMs: number, task: () => void): void {
    const timer = setTimeout(() => {
      this.#queryTimers.delete(timer);
      if (this.#state === "running") task();
    }, delayMs);
    timer.unref();
    this.#queryTimers.add(timer);
  }

  #query(): void {
    const mdns = this.#mdns;
    if (mdns === undefined) return;
    try {
      this.#refreshLocalInterfaces();
      this.#republishIfAddressesChanged();
      mdns.query({ questions: [{ name: this.#serviceName, type: "PTR" }] }, (error) => {
        if (error) this.logger.debug({ err: error }, "mDNS query could not be sent");
      });
      this.#status.queriesSent++;
    } catch (error) {
      this.logger.warn({ err: error }, "mDNS query failed");
    }
  }

  readonly #sweep = (): void => {
    try {
      const { lost, changed } = this.#sightings.expire(this.#now());
      for (const nodeId of lost) {
        this.logger.info({ peer: shortNodeId(nodeId), reason: "expired" }, "peer no longer advertised");
        this.notify("peerLost", nodeId);
      }
      for (const peer of changed) this.notify("peerSeen", peer);
    } catch (error) {
      this.logger.warn({ err: error }, "mDNS expiry sweep failed");
    }
  };

  readonly #onSocketError = (error: unknown): void => {
    this.#status.socketError = errorText(error);
    this.logger.warn({ err: error }, "mDNS socket error");
  };

  readonly #onSocketWarning = (error: unknown): void => {
    this.logger.debug({ err: error }, "mDNS socket warning");
  };

  readonly #onResponse = (packet: unknown, remote: unknown): void => {
    try {
      if (this.#state === "running") this.#readResponse(packet, remote);
    } catch (error) {
      this.logger.warn({ err: error }, "mDNS response handling failed");
    }
  };

  #readResponse(packet: unknown, remote: unknown): void {
    const { goodbyes, instances } = readServiceResponse(packet, this.#serviceName);
    if (goodbyes.length === 0 && instances.length === 0) return;
    const referer = typeof (remote as { address?: unknown } | null)?.address === "string" ? (remote as { address: string }).address : undefined;
    this.#status.answersRead++;

    for (const instance of goodbyes) {
      const nodeId = this.#sightings.goodbye(instance);
      if (nodeId === undefined) continue;
      this.logger.info({ peer: shortNodeId(nodeId), reason: "goodbye" }, "peer no longer advertised");
      this.notify("peerLost", nodeId);
    }

    const now = this.#now();
    for (const answer of instances) {
      const parsed = parseHearthTxt(answer.txt);
      if (!parsed.ok) {
        this.#status.answersIgnored++;
        this.#status.lastIgnoredReason = parsed.reason;
        this.logger.debug({ from: referer, instance: quoteName(answer.instance), reason: parsed.reason }, "ignored mDNS answer");
        continue;
      }
      const { hint } = parsed;
      if (hint.nodeId === this.#identity.nodeId) {
        this.#noteOwnAnswer(referer);
        continue;
      }
      const addresses = orderPeerAddresses({ referer, advertised: answer.addresses, port: answer.port }, this.#localInterfaces, this.#maxAddressesPerPeer);
      const outcome = this.#sightings.observe({ instance: answer.instance, hint, addresses }, now);
      if (outcome === "refused") {
        this.logger.debug({ from: referer, peer: shortNodeId(hint.nodeId), addresses: addresses.length }, "mDNS answer not tracked (no usable address, or table full)");
        continue;
      }
      if (outcome === "refreshed") continue;
      const peer = this.#sightings.peer(hint.nodeId);
      if (peer === undefined) continue;
      this.logger.info(
        { peer: shortNodeId(peer.nodeId), addresses: peer.addresses.map((address) => address.host), protocol: `${peer.protocolVersion.major}.${peer.protocolVersion.minor}` },
        outcome === "new" ? "peer discovered" : "peer advertisement changed",
      );
      this.notify("peerSeen", peer);
    }
  }

  #noteOwnAnswer(referer: string | undefined): void {
    this.#status.ownAnswersHeard++;
    // Our own answers come back from one of our addresses. The same id from elsewhere means
    // another machine runs with a copy of this node's identity (a cloned data dir).
    if (referer !== undefined && !this.#localAddresses.has(normaliseIp(referer)) && !this.#warnedIdentityClash) {
      this.#warnedIdentityClash = true;
      this.logger.warn({ from: referer }, "another machine advertises this node's id; was the data dir copied?");
    }
  }
}
