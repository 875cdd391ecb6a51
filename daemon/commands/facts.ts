/**
 * What `hearth doctor` reports of this machine without asking its daemon: the configured
 * addresses, the identity and membership in the data dir (absent or unreadable ones are
 * simply not there), and the network interfaces, classified.
 */

import { listInterfaces } from "../discovery/interfaces.js";
import { ClusterMembership } from "../identity/ClusterMembership.js";
import { NodeIdentity } from "../identity/NodeIdentity.js";
import { configFor, type ConfigChoice } from "./configChoice.js";

export async function machineFacts(choice: ConfigChoice) {
  const config = await configFor(choice);
  const identity = await NodeIdentity.load(config.dataDir).catch(() => undefined);
  const membership = await ClusterMembership.load(config.dataDir).catch(() => undefined);
  return {
    host: config.host,
    port: config.port,
    dataDir: config.dataDir,
    peer: { host: config.peer.host, port: config.peer.port, mdns: config.peer.mdns, staticPeers: config.peer.staticPeers },
    nodeId: identity?.nodeId ?? null,
    clusterId: membership?.clusterId ?? null,
    interfaces: listInterfaces(),
  };
}
