/**
 * Is anything listening on a TCP port of this machine? `hearth doctor` asks it of the HTTP and
 * peer ports, to tell "the daemon is not running" from "another program holds the port".
 */

import net from "node:net";

const CONNECT_TIMEOUT_MS = 1000;

/** True when a TCP connection to `host:port` is accepted within a second. */
export function isListening(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (listening: boolean): void => {
      socket.destroy();
      resolve(listening);
    };
    socket.setTimeout(CONNECT_TIMEOUT_MS, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** Where to knock for a port bound to `bindHost`: wildcard binds answer on loopback. */
export function probeHost(bindHost: string): string {
  const bare = bindHost.replace(/^\[|\]$/g, "");
  if (bare === "0.0.0.0" || bare === "") return "127.0.0.1";
  if (bare === "::") return "::1";
  return bare;
}
