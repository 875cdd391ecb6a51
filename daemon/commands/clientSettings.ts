/**
 * Where a client on this machine finds its daemon: the host and port `hearth serve` listens
 * on by the same configuration, and the API key it wants (api_key_file or HEARTH_API_KEY).
 */

import net from "node:net";
import { stripBrackets } from "../config/security.js";
import { configFor, type ConfigChoice } from "./configChoice.js";

/** Wildcard binds accept connections on loopback, which is where a local client should go. */
function connectableHost(host: string): string {
  const bare = stripBrackets(host);
  if (bare === "0.0.0.0" || bare === "") return "127.0.0.1";
  if (bare === "::") return "[::1]";
  return net.isIPv6(bare) ? `[${bare}]` : bare;
}

export async function clientSettings(choice: ConfigChoice): Promise<{ url: string; apiKey: string | undefined }> {
  const config = await configFor(choice);
  return { url: `http://${connectableHost(config.host)}:${config.port}`, apiKey: config.apiKey };
}
