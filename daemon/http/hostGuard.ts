/**
 * Host header check against DNS rebinding.
 *
 * A web page on an attacker's domain can make a browser send requests to this daemon by
 * re-pointing its DNS name at a LAN or loopback address; the browser then still sends the
 * attacker's name in Host. Accepting only names that denote this node (loopback, the bound
 * address, every interface address, the machine's host name, and configured extra names)
 * makes such requests fail with 403 before any handler runs.
 */

import os from "node:os";

const WILDCARD_HOSTS = new Set(["0.0.0.0", "::", "[::]", ""]);

/**
 * The host name of a Host header, lower-cased, without port, brackets, IPv6 zone or a
 * trailing dot. Undefined when the header is absent or malformed.
 */
export function parseHostHeader(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  let host = value.trim().toLowerCase();
  if (host === "") return undefined;
  if (host.startsWith("[")) {
    const end = host.indexOf("]");
    if (end === -1) return undefined;
    const rest = host.slice(end + 1);
    if (rest !== "" && !/^:\d{1,5}$/.test(rest)) return undefined;
    host = host.slice(1, end);
  } else if ((host.match(/:/g) ?? []).length === 1) {
    const colon = host.indexOf(":");
    if (!/^\d{1,5}$/.test(host.slice(colon + 1))) return undefined;
    host = host.slice(0, colon);
  }
  // More than one colon without brackets: a bare IPv6 address, accepted as is.
  const zone = host.indexOf("%");
  if (zone !== -1) host = host.slice(0, zone);
  if (host.endsWith(".")) host = host.slice(0, -1);
  return host === "" ? undefined : host;
}

export interface HostGuardOptions {
  /** The address the server binds to (config.host). */
  boundHost: string;
  /** config.allowedHosts: extra names, with or without port. */
  allowedHosts: readonly string[];
  /** Addresses of this machine's interfaces; read on every miss so a new DHCP lease counts. */
  interfaceAddresses?: () => string[];
  hostname?: string;
}

export function localInterfaceAddresses(): string[] {
  return Object.values(os.networkInterfaces()).flatMap((entries) => (entries ?? []).map((entry) => entry.address));
}

export class HostGuard {
  private readonly fixed = new Set<string>();
  private readonly interfaceAddresses: () => string[];

  constructor(options: HostGuardOptions) {
    this.interfaceAddresses = options.interfaceAddresses ?? localInterfaceAddresses;
    const names = ["localhost", "127.0.0.1", "::1", options.boundHost, ...options.allowedHosts];
    const hostname = options.hostname ?? os.hostname();
    if (hostname !== "") names.push(hostname, `${hostname}.local`);
    for (const name of names) {
      if (WILDCARD_HOSTS.has(name.trim())) continue;
      const parsed = parseHostHeader(name) ?? parseHostHeader(`[${name}]`);
      if (parsed !== undefined) this.fixed.add(parsed);
    }
  }

  isAllowed(hostHeader: string | undefined): boolean {
    const host = parseHostHeader(hostHeader);
    if (host === undefined) return false;
    if (this.fixed.has(host)) return true;
    return this.interfaceAddresses().some((address) => parseHostHeader(`[${address}]`) === host || address.toLowerCase() === host);
  }
}
