/**
 * Parsing of static peer entries: `--peer host:port` (repeatable) and the config file's list.
 *
 * Accepted forms:
 *   192.168.1.20:4328     an IPv4 address
 *   [fd00::20]:4328       an IPv6 address, in brackets (RFC 3986), optionally with a %zone
 *   desktop.lan:4328      a host name, resolved when dialling
 *   192.168.1.20          without a port: the default peer port
 * A bare IPv6 address is refused, because `::1:4328` could mean either thing.
 *
 * Every refusal is a HearthError HEARTH_CONFIG_INVALID whose message quotes the entry and says
 * what to write instead. Pure: no DNS lookups, no I/O.
 */

import net from "node:net";
import type { HearthError } from "../../protocol/errors.js";
import { errors } from "../../protocol/errors.js";
import { isUnroutableAddress } from "./interfaces.js";
import type { PeerAddress } from "./PeerDiscovery.js";

/** Longest entry: a 253-character name, brackets, a colon and 5 digits, with room to spare. */
export const MAX_STATIC_PEER_ENTRY_LENGTH = 270;
/** Static peers one node may list; a home cluster has two or three machines. */
export const MAX_STATIC_PEERS = 64;

const HOST_LABEL = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;
const PORT_TEXT = /^[0-9]{1,5}$/;
const ZONE = /^[A-Za-z0-9_.-]{1,32}$/;
const EXAMPLE = "e.g. 192.168.1.20:4328, [fd00::20]:4328 or desktop.lan:4328";

/** A piece of the entry, quoted and cut, for an error message. */
function quote(text: string, limit = 24): string {
  return JSON.stringify(text.length > limit ? `${text.slice(0, limit)}...` : text);
}

function invalid(entry: string, why: string, param: string): HearthError {
  return errors.configInvalid(`Static peer ${quote(entry, 80)}: ${why} (${EXAMPLE}).`, { param });
}

function isHostName(host: string): boolean {
  const name = host.endsWith(".") ? host.slice(0, -1) : host;
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split(".");
  // All-numeric dotted names are malformed IPv4 addresses, not names (RFC 1123 §2.1).
  if (labels.every((label) => /^[0-9]+$/.test(label))) return false;
  return labels.every((label) => HOST_LABEL.test(label));
}

function parsePort(entry: string, text: string, param: string): number {
  if (!PORT_TEXT.test(text)) throw invalid(entry, `port ${quote(text)} is not a number`, param);
  const port = Number(text);
  if (port < 1 || port > 65_535) throw invalid(entry, `port ${port} is outside 1-65535`, param);
  return port;
}

/**
 * One entry as `{host, port}`. IPv6 hosts come back without brackets, as sockets want them.
 * `param` names the setting in errors (the config key or flag).
 */
export function parseStaticPeer(text: string, defaultPort: number, param = "peers"): PeerAddress {
  const entry = text.trim();
  if (entry.length === 0) throw invalid(text, "is empty", param);
  if (entry.length > MAX_STATIC_PEER_ENTRY_LENGTH) throw invalid(entry, `is longer than ${MAX_STATIC_PEER_ENTRY_LENGTH} characters`, param);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(entry)) throw invalid(entry, "is a URL; give only host:port", param);

  let host: string;
  let port = defaultPort;
  if (entry.startsWith("[")) {
    const close = entry.indexOf("]");
    if (close < 0) throw invalid(entry, "has no closing ]", param);
    host = entry.slice(1, close);
    const rest = entry.slice(close + 1);
    if (rest.startsWith(":")) port = parsePort(entry, rest.slice(1), param);
    else if (rest.length > 0) throw invalid(entry, `has ${quote(rest)} after the ]`, param);
    const [address = "", zone] = host.split("%");
    if (!net.isIPv6(address) || (zone !== undefined && !ZONE.test(zone))) throw invalid(entry, "is not an IPv6 address inside the brackets", param);
  } else {
    const colons = entry.split(":").length - 1;
    if (colons > 1) throw invalid(entry, "looks like an IPv6 address; put it in brackets", param);
    const colon = entry.indexOf(":");
    host = colon < 0 ? entry : entry.slice(0, colon);
    if (colon >= 0) port = parsePort(entry, entry.slice(colon + 1), param);
    if (!net.isIPv4(host) && !isHostName(host)) throw invalid(entry, `${quote(host)} is neither an IP address nor a host name`, param);
  }
  const [bareAddress = host, zone] = host.split("%");
  if (net.isIP(bareAddress) !== 0 && isUnroutableAddress(bareAddress)) {
    throw invalid(entry, "is an unspecified, broadcast or multicast address, not a peer", param);
  }
  // Names and addresses compare case-insensitively; a zone is an interface name and keeps its case.
  return { host: zone === undefined ? host.toLowerCase() : `${bareAddress.toLowerCase()}%${zone}`, port };
}

/**
 * All entries, in order, without duplicates (the same host and port listed twice is one peer).
 * Refuses the whole list on the first bad entry, so a typo is never silently skipped.
 */
export function parseStaticPeers(entries: readonly string[], defaultPort: number, param = "peers"): PeerAddress[] {
  if (entries.length > MAX_STATIC_PEERS) {
    throw errors.configInvalid(`At most ${MAX_STATIC_PEERS} static peers may be listed, got ${entries.length}.`, { param });
  }
  const result: PeerAddress[] = [];
  const seen = new Set<string>();
  for (const entry of entries) {
    const address = parseStaticPeer(entry, defaultPort, param);
    const key = `${address.host}|${address.port}`;
    if (seen.has(key)) continue;
    seen.add(key);
    result.push(address);
  }
  return result;
}
