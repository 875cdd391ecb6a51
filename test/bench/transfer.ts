/**
 * Model transfer benchmark: how fast a GGUF file crosses between two namespaces over the peer
 * link (`POST /hearth/v1/models/pull` on the receiver: TLS, WebSocket frames, stream credit,
 * disk read on the holder, disk write and sha256 on the receiver, install), against raw TCP
 * carrying the same number of bytes between the same namespaces (fixtures/tcp-server.ts and
 * tcp-probe.ts: memory to memory, no TLS, no disk). Prints figures; asserts nothing.
 *
 *   transfer.<link>.tcp_MBps      raw TCP throughput, best of N
 *   transfer.<link>.gguf_MBps     the model transfer, from the transfer's start to the
 *                                 verified file in the models dir, best of N
 *   ratio.transfer_vs_tcp.<link>  the two divided (issue 4 target: >= 0.8)
 * `<link>` is `veth` (the namespaces' virtual cable, as fast as memory and the CPU allow) and
 * `1gbit` (the holder's egress shaped to 1 Gbit/s with tbf, a typical home LAN).
 *
 * Needs root and iproute2. Run alone with `node dist/test/bench/transfer.js --model FILE [--repeats N]`.
 */

import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { ClusterNet, clusterFixture, sleep, type ClusterNode } from "../support/clusterNet.js";
import { NetnsUnavailableError, assertNetnsSupport } from "../support/netns.js";
import { requireTool } from "../support/netns-system.js";

export interface TransferBenchOptions {
  /** The GGUF file sent (the bench model). */
  modelPath: string;
  repeats: number;
  /** Extra `[peer]` TOML for both daemons (to compare stream windows and chunk sizes). */
  peerToml?: string;
}

const TCP_PORT = 5201;
const MODEL_NAME = "bench";
const POLL_MS = 50;
const TRANSFER_TIMEOUT_MS = 10 * 60_000;
const MB = 1_000_000;

interface TransferRecord {
  state: string;
  startedAt: string;
  finishedAt: string | null;
  error: { code: string; message: string } | null;
  bytesDone: number;
}

async function rawTcpMs(sender: ClusterNode, receiver: ClusterNode, bytes: number): Promise<number> {
  const server = receiver.host.spawn(process.execPath, [clusterFixture("tcp-server.js"), "0.0.0.0", String(TCP_PORT)]);
  try {
    await new Promise<void>((resolve, reject) => {
      server.stdout!.setEncoding("utf8").on("data", (text: string) => {
        if (text.includes("listening")) resolve();
      });
      server.once("exit", () => reject(new Error("tcp-server exited")));
    });
    const run = await sender.host.exec(process.execPath, [clusterFixture("tcp-probe.js"), receiver.address, String(TCP_PORT), String(TRANSFER_TIMEOUT_MS), String(bytes)], { timeoutMs: TRANSFER_TIMEOUT_MS });
    const result = JSON.parse(run.stdout.trim()) as { ok: boolean; totalMs?: number; error?: string };
    if (!result.ok || result.totalMs === undefined) throw new Error(`raw TCP run failed: ${result.error ?? run.stderr}`);
    return result.totalMs;
  } finally {
    server.kill("SIGTERM");
  }
}

async function transferMs(receiver: ClusterNode, sha256: string): Promise<number> {
  const started = await receiver.http("POST", "/hearth/v1/models/pull", { model: sha256 }, 30_000);
  if (started.status !== 202) throw new Error(`pull answered ${started.status}: ${JSON.stringify(started.body)}`);
  const deadline = performance.now() + TRANSFER_TIMEOUT_MS;
  while (performance.now() < deadline) {
    const answer = await receiver.http("GET", `/hearth/v1/models/pulls/${sha256}`);
    const transfer = (answer.body as { transfer?: TransferRecord }).transfer;
    if (transfer?.state === "failed") throw new Error(`the transfer failed: ${JSON.stringify(transfer.error)}`);
    if (transfer?.state === "done" && transfer.finishedAt !== null) {
      fs.rmSync(path.join(receiver.modelsDir, `${MODEL_NAME}.gguf`), { force: true });
      return Date.parse(transfer.finishedAt) - Date.parse(transfer.startedAt);
    }
    await sleep(POLL_MS);
  }
  throw new Error("the transfer did not finish in time");
}

async function measure(net: ClusterNet, sha256: string, size: number, repeats: number, label: string, figures: Record<string, number>): Promise<void> {
  const [holder, receiver] = net.nodes as [ClusterNode, ClusterNode];
  const tcp: number[] = [];
  const gguf: number[] = [];
  for (let i = 0; i < repeats; i++) {
    tcp.push(await rawTcpMs(holder, receiver, size));
    gguf.push(await transferMs(receiver, sha256));
  }
  const tcpMBps = size / MB / (Math.min(...tcp) / 1000);
  const ggufMBps = size / MB / (Math.min(...gguf) / 1000);
  process.stderr.write(`transfer bench (${label}): raw TCP ${tcp.map((ms) => Math.round(ms)).join("/")} ms, model ${gguf.join("/")} ms\n`);
  figures[`transfer.${label}.tcp_MBps`] = Math.round(tcpMBps * 10) / 10;
  figures[`transfer.${label}.gguf_MBps`] = Math.round(ggufMBps * 10) / 10;
  figures[`ratio.transfer_vs_tcp.${label}`] = ggufMBps / tcpMBps;
}

export async function benchTransfer(options: TransferBenchOptions): Promise<Record<string, number>> {
  try {
    assertNetnsSupport();
    requireTool("tc");
  } catch (error) {
    if (!(error instanceof NetnsUnavailableError)) throw error;
    process.stderr.write(`transfer bench skipped: ${error.message}\n`);
    return {};
  }
  const size = fs.statSync(options.modelPath).size;
  const toml = `[models]\ndisk_reserve_bytes = 0\n${options.peerToml === undefined ? "" : `[peer]\n${options.peerToml}\n`}`;
  const net = await ClusterNet.create({ nodes: [{ configToml: toml, args: ["--no-mdns"] }, { configToml: toml, tinyModel: false }], prefix: "hbt" });
  const figures: Record<string, number> = { "transfer.model_bytes": size };
  try {
    const [holder, receiver] = net.nodes as [ClusterNode, ClusterNode];
    fs.symlinkSync(path.resolve(options.modelPath), path.join(holder.modelsDir, `${MODEL_NAME}.gguf`));
    await holder.start();
    await receiver.start({ args: ["--no-mdns", "--peer", holder.peerAddress] });
    process.stderr.write(`transfer bench: waiting for the ${(size / MB).toFixed(0)} MB model to be hashed ...\n`);
    const { views } = await net.waitFor(
      [receiver],
      ([view]) => view!.peers.some((peer) => peer.state === "up" && peer.models?.some((model) => model.id === MODEL_NAME && model.sha256 !== null)),
      { timeoutMs: 5 * 60_000, what: "the receiver to see the bench model's hash" },
    );
    const sha256 = views[0]!.peers.flatMap((peer) => peer.models ?? []).find((model) => model.id === MODEL_NAME)!.sha256!;
    await measure(net, sha256, size, options.repeats, "veth", figures);
    // A home LAN: the holder's egress shaped to 1 Gbit/s (tbf; netem is not needed for a rate).
    await holder.host.exec(requireTool("tc"), ["qdisc", "add", "dev", holder.host.interfaceName, "root", "tbf", "rate", "1gbit", "burst", "256kb", "latency", "50ms"]);
    await measure(net, sha256, size, options.repeats, "1gbit", figures);
  } finally {
    await net.destroy();
  }
  return figures;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({ options: { model: { type: "string" }, repeats: { type: "string", default: "2" }, peer: { type: "string" } } });
  if (values.model === undefined) throw new Error("usage: transfer.js --model FILE [--repeats N] [--peer 'stream_window_bytes = 4194304']");
  benchTransfer({ modelPath: values.model, repeats: Number(values.repeats), ...(values.peer === undefined ? {} : { peerToml: values.peer.replaceAll(";", "\n") }) }).then(
    (figures) => {
      for (const [key, value] of Object.entries(figures)) process.stdout.write(`  ${key.padEnd(44)} ${Number.isInteger(value) ? value : value.toFixed(3)}\n`);
    },
    (error: unknown) => {
      process.stderr.write(`transfer bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(1);
    },
  );
}
