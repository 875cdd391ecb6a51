/**
 * Which bind addresses are safe without an API key.
 *
 * Only loopback is: anything else (0.0.0.0, a LAN address, a host name) lets every device on
 * the network, and any web page a browser on it visits, drive the models. Host names other
 * than "localhost" count as non-loopback because what they resolve to can change.
 *
 * Pure: no I/O.
 */

import net from "node:net";
import { errors } from "../../protocol/errors.js";
import type { HearthConfig } from "./defaults.js";

export function stripBrackets(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

export function isLoopbackHost(host: string): boolean {
  const bare = stripBrackets(host).toLowerCase();
  if (bare === "localhost" || bare.endsWith(".localhost")) return true;
  if (net.isIPv4(bare)) return bare.startsWith("127.");
  if (net.isIPv6(bare)) {
    if (bare === "::1" || bare === "0:0:0:0:0:0:0:1") return true;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(bare);
    return mapped?.[1] !== undefined && mapped[1].startsWith("127.");
  }
  return false;
}

/** Refuses a configuration that would expose the API to the network without a key. */
export function assertSafeToServe(config: HearthConfig): void {
  if (config.apiKey === undefined && !isLoopbackHost(config.host)) {
    throw errors.configInvalid(`refusing to listen on ${config.host} without an API key: every device on the network could use this machine's models. ` +
        "Set api_key_file in config.toml, pass --api-key-file, or set HEARTH_API_KEY (or bind to 127.0.0.1).",
      { param: "host" },
    );
  }
}
