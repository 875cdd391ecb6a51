/**
 * `hearth cluster init | join | show`: this machine's cluster membership and node identity,
 * in the data dir. They need no daemon; a running `hearth serve` picks up a new membership
 * when restarted. The join token is the cluster secret: it is returned by init only.
 */

import { ClusterMembership } from "../identity/ClusterMembership.js";
import { NodeIdentity } from "../identity/NodeIdentity.js";
import { configFor, type ConfigChoice } from "./configChoice.js";

type MembershipChoice = ConfigChoice & { dataDir?: string | undefined };

function membershipConfigFor(choice: MembershipChoice): ReturnType<typeof configFor> {
  return configFor(choice, choice.dataDir === undefined ? {} : { dataDir: choice.dataDir });
}

export const cluster = {
  async init(choice: MembershipChoice & { force: boolean }) {
    const config = await membershipConfigFor(choice);
    const change = await ClusterMembership.init(config.dataDir, { force: choice.force });
    const identity = await NodeIdentity.loadOrCreate(config.dataDir);
    return { clusterId: change.membership.clusterId, joinToken: change.membership.joinToken(), nodeId: identity.nodeId, replacedClusterId: change.replacedClusterId };
  },

  async join(token: string, choice: MembershipChoice & { force: boolean }) {
    const config = await membershipConfigFor(choice);
    const change = await ClusterMembership.join(config.dataDir, token, { force: choice.force });
    const identity = await NodeIdentity.loadOrCreate(config.dataDir);
    return { clusterId: change.membership.clusterId, nodeId: identity.nodeId, changed: change.changed, replacedClusterId: change.replacedClusterId };
  },

  async show(choice: MembershipChoice) {
    const config = await membershipConfigFor(choice);
    const identity = await NodeIdentity.load(config.dataDir);
    const membership = await ClusterMembership.load(config.dataDir);
    return {
      nodeId: identity?.nodeId ?? null,
      fingerprint: identity?.fingerprintHex ?? null,
      clusterId: membership?.clusterId ?? null,
      origin: membership?.origin ?? null,
      since: membership?.since ?? null,
      peerPort: config.peer.port,
      peerBind: config.peer.host,
      mdns: config.peer.mdns,
      staticPeers: config.peer.staticPeers,
      dataDir: config.dataDir,
    };
  },
};
