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
 * They work on the data dir directly (LocalMachine.cluster, cli/localMachine.ts) and need no
 * daemon; a running `hearth serve` picks up a new membership when restarted. The token is the
 * secret: it is printed by init only, and never logged or echoed in an error.
 */

import type { Command } from "commander";
import { errors } from "../../protocol/errors.js";
import type { LocalMachine, MembershipChoice } from "../localMachine.js";
import { printJson } from "../output.js";

interface ClusterOptions {
  dataDir?: string;
  config?: string;
  json?: boolean;
  force?: boolean;
}

/** A token is 92 characters; anything much longer on stdin is not one. */
const MAX_STDIN_TOKEN_CHARS = 4096;

export function registerClusterCommand(program: Command, machine: LocalMachine): void {
  const cluster = program.command("cluster").description("create, join or show this machine's cluster membership");
  withCommonOptions(
    cluster
      .command("init")
      .description("create a new cluster with this node as its first member and print the join token")
      .option("--force", "replace this node's current membership (cuts it off from its old cluster)"),
  ).action((options: ClusterOptions) => init(machine, options));
  withCommonOptions(
    cluster
      .command("join")
      .description("join the cluster of a token printed by `hearth cluster init` (- reads it from stdin)")
      .argument("<token>", "join token (hearth1_...), or - to read it from stdin")
      .option("--force", "replace this node's membership of another cluster"),
  ).action((token: string, options: ClusterOptions) => join(machine, token, options));
  withCommonOptions(cluster.command("show").description("show this node's id, its cluster id and peer port")).action((options: ClusterOptions) => show(machine, options));
}

function withCommonOptions(command: Command): Command {
  return command
    .option("--data-dir <dir>", "state directory (default: data_dir of the config file, else $XDG_DATA_HOME/hearth)")
    .option("--config <file>", "config file (default: $XDG_CONFIG_HOME/hearth/config.toml)")
    .option("--json", "print a JSON object for scripts");
}

/** The membership's data dir, and config warnings on stderr as they are found. */
function membershipChoice(options: ClusterOptions): MembershipChoice {
  return { configFile: options.config, dataDir: options.dataDir, onWarning: (warning) => process.stderr.write(`warning: ${warning}\n`) };
}

async function init(machine: LocalMachine, options: ClusterOptions): Promise<void> {
  const created = await machine.cluster.init({ ...membershipChoice(options), force: options.force === true });
  const token = created.joinToken;
  if (options.json) {
    printJson({ clusterId: created.clusterId, joinToken: token, nodeId: created.nodeId });
    return;
  }
  const replaced = created.replacedClusterId === undefined ? "" : ` (this node left cluster ${created.replacedClusterId})`;
  process.stdout.write(
    `Created cluster ${created.clusterId} with this node (${created.nodeId}) as its first member${replaced}.\n\n` +
      `Join token (it is the cluster secret: share it only with machines you own):\n\n  ${token}\n\n` +
      `On each other machine run:\n\n  hearth cluster join ${token}\n\n` +
      "Then start (or restart) `hearth serve` on every machine.\n",
  );
}

async function join(machine: LocalMachine, tokenArgument: string, options: ClusterOptions): Promise<void> {
  const token = tokenArgument === "-" ? await readTokenFromStdin() : tokenArgument;
  const joined = await machine.cluster.join(token, { ...membershipChoice(options), force: options.force === true });
  const { clusterId, nodeId } = joined;
  if (options.json) {
    printJson({ clusterId, nodeId, changed: joined.changed, replacedClusterId: joined.replacedClusterId ?? null });
    return;
  }
  if (!joined.changed) {
    process.stdout.write(`This node (${nodeId}) already belongs to cluster ${clusterId}; nothing changed.\n`);
    return;
  }
  const replaced = joined.replacedClusterId === undefined ? "" : ` It left cluster ${joined.replacedClusterId}.`;
  process.stdout.write(`This node (${nodeId}) joined cluster ${clusterId}.${replaced} Start (or restart) \`hearth serve\` to connect to its peers.\n`);
}

async function show(machine: LocalMachine, options: ClusterOptions): Promise<void> {
  const view = await machine.cluster.show(membershipChoice(options));
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
