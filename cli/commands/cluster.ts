/**
 * `hearth cluster init | join TOKEN | show`: this machine's cluster membership.
 *
 *   - init creates a cluster (a fresh id and secret) with this node as its first member and
 *     prints the join token; `--force` replaces an existing membership (how the secret is
 *     rotated: docs/security.md);
 *   - join stores the credentials a token carries (`-` reads the token from stdin, so it stays
 *     out of `ps` and shell history); joining the same cluster again changes nothing;
 *   - show prints the node id, the cluster id (never the secret) and the peer port.
 *
 * They work on the data dir directly and need no daemon; a running `hearth serve` picks up a
 * new membership when restarted. The token is the secret: it is printed by init only, and
 * never logged or echoed in an error.
 */

import type { Command } from "commander";
import { errors } from "../../protocol/errors.js";
import { loadConfig } from "../../daemon/config/loadConfig.js";
import type { HearthConfig } from "../../daemon/config/defaults.js";
import { ClusterMembership } from "../../daemon/identity/ClusterMembership.js";
import { NodeIdentity } from "../../daemon/identity/NodeIdentity.js";
import { printJson } from "../output.js";

interface ClusterOptions {
  dataDir?: string;
  config?: string;
  json?: boolean;
  force?: boolean;
}

/** A token is 92 characters; anything much longer on stdin is not one. */
const MAX_STDIN_TOKEN_CHARS = 4096;

export function registerClusterCommand(program: Command): void {
  const cluster = program.command("cluster").description("create, join or show this machine's cluster membership");
  withCommonOptions(
    cluster
      .command("init")
      .description("create a new cluster with this node as its first member and print the join token")
      .option("--force", "replace this node's current membership (cuts it off from its old cluster)"),
  ).action(init);
  withCommonOptions(
    cluster
      .command("join")
      .description("join the cluster of a token printed by `hearth cluster init` (- reads it from stdin)")
      .argument("<token>", "join token (hearth1_...), or - to read it from stdin")
      .option("--force", "replace this node's membership of another cluster"),
  ).action(join);
  withCommonOptions(cluster.command("show").description("show this node's id, its cluster id and peer port")).action(show);
}

function withCommonOptions(command: Command): Command {
  return command
    .option("--data-dir <dir>", "state directory (default: data_dir of the config file, else $XDG_DATA_HOME/hearth)")
    .option("--config <file>", "config file (default: $XDG_CONFIG_HOME/hearth/config.toml)")
    .option("--json", "print a JSON object for scripts");
}

async function configFor(options: ClusterOptions): Promise<HearthConfig> {
  const loaded = await loadConfig({
    ...(options.config === undefined ? {} : { configFile: options.config }),
    flags: options.dataDir === undefined ? {} : { dataDir: options.dataDir },
  });
  for (const warning of loaded.warnings) process.stderr.write(`warning: ${warning}\n`);
  return loaded.config;
}

async function init(options: ClusterOptions): Promise<void> {
  const config = await configFor(options);
  const change = await ClusterMembership.init(config.dataDir, { force: options.force === true });
  const identity = await NodeIdentity.loadOrCreate(config.dataDir);
  const token = change.membership.joinToken();
  if (options.json) {
    printJson({ clusterId: change.membership.clusterId, joinToken: token, nodeId: identity.nodeId });
    return;
  }
  const replaced = change.replacedClusterId === undefined ? "" : ` (this node left cluster ${change.replacedClusterId})`;
  process.stdout.write(
    `Created cluster ${change.membership.clusterId} with this node (${identity.nodeId}) as its first member${replaced}.\n\n` +
      `Join token (it is the cluster secret: share it only with machines you own):\n\n  ${token}\n\n` +
      `On each other machine run:\n\n  hearth cluster join ${token}\n\n` +
      "Then start (or restart) `hearth serve` on every machine.\n",
  );
}

async function join(tokenArgument: string, options: ClusterOptions): Promise<void> {
  const token = tokenArgument === "-" ? await readTokenFromStdin() : tokenArgument;
  const config = await configFor(options);
  const change = await ClusterMembership.join(config.dataDir, token, { force: options.force === true });
  const identity = await NodeIdentity.loadOrCreate(config.dataDir);
  const clusterId = change.membership.clusterId;
  if (options.json) {
    printJson({ clusterId, nodeId: identity.nodeId, changed: change.changed, replacedClusterId: change.replacedClusterId ?? null });
    return;
  }
  if (!change.changed) {
    process.stdout.write(`This node (${identity.nodeId}) already belongs to cluster ${clusterId}; nothing changed.\n`);
    return;
  }
  const replaced = change.replacedClusterId === undefined ? "" : ` It left cluster ${change.replacedClusterId}.`;
  process.stdout.write(`This node (${identity.nodeId}) joined cluster ${clusterId}.${replaced} Start (or restart) \`hearth serve\` to connect to its peers.\n`);
}

async function show(options: ClusterOptions): Promise<void> {
  const config = await configFor(options);
  const identity = await NodeIdentity.load(config.dataDir);
  const membership = await ClusterMembership.load(config.dataDir);
  const view = {
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
  if (options.json) {
    printJson(view);
    return;
  }
  const lines = [
    `node id:      ${view.nodeId ?? "(none yet: created by the first `hearth serve` or `hearth cluster init|join`)"}`,
    `cluster:      ${view.clusterId === null ? "none (standalone; see `hearth cluster init` and `hearth cluster join`)" : `${view.clusterId} (${view.origin === "init" ? "created here" : "joined"} ${view.since ?? ""})`}`,
    `peer port:    ${view.peerPort} on ${view.peerBind}`,
    `mdns:         ${view.mdns ? "on" : "off"}`,
    `static peers: ${view.staticPeers.length === 0 ? "none" : view.staticPeers.join(", ")}`,
    `data dir:     ${view.dataDir}`,
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}

async function readTokenFromStdin(): Promise<string> {
  let text = "";
  for await (const chunk of process.stdin) {
    text += (chunk as Buffer).toString("utf8");
    if (text.length > MAX_STDIN_TOKEN_CHARS) {
      throw errors.joinTokenInvalid("stdin holds more than a join token; pass only the token printed by `hearth cluster init`.", { param: "token" });
    }
  }
  return text.trim();
}
