/**
 * `hearth pull MODEL --from-peer`: has the daemon fetch MODEL (a model id or a sha256 from the
 * peers' model lists) from a cluster peer, and follows the transfer.
 *
 * The daemon does the work (POST /hearth/v1/models/pull, docs/api.md); this command polls
 * GET /hearth/v1/models/pulls/{sha256} and draws progress on stderr (on a terminal). On success
 * stdout gets the local model id; `--json` prints the final transfer instead. Ctrl-C stops
 * following, not the transfer, which goes on in the daemon (`hearth status` shows it).
 */

import { pullResultSchema, transferAnswerSchema } from "../../protocol/api/pulls.js";
import { errors, isHearthErrorCode } from "../../protocol/errors.js";
import { daemonClientFor } from "../client.js";
import type { LocalMachine } from "../localMachine.js";
import type { ClientCommandOptions } from "../options.js";
import { EXIT_INTERRUPTED, formatBytes, printJson } from "../output.js";
import { formatTransferLine } from "./transferLine.js";

const POLL_MS = 300;
const REQUEST_TIMEOUT_MS = 30_000;

export async function pullFromPeer(machine: LocalMachine, model: string, options: ClientCommandOptions): Promise<void> {
  const client = await daemonClientFor(machine, options);
  const answer = await client.postJson("/hearth/v1/models/pull", { model }, pullResultSchema, { timeoutMs: REQUEST_TIMEOUT_MS });
  if (answer.present) {
    if (options.json) printJson(answer);
    else {
      process.stderr.write(`${answer.modelId} is already in this node's models dir\n`);
      process.stdout.write(`${answer.modelId}\n`);
    }
    return;
  }
  const sha256 = answer.transfer.sha256;
  if (answer.joined) process.stderr.write(`joining the transfer already running for ${sha256.slice(0, 12)}\n`);

  let interrupted = false;
  const onSigint = (): void => {
    interrupted = true;
  };
  process.once("SIGINT", onSigint);
  const line = new RedrawnLine();
  try {
    for (;;) {
      if (interrupted) {
        line.finish();
        process.stderr.write("stopped following; the transfer continues in the daemon (hearth status shows it)\n");
        process.exitCode = EXIT_INTERRUPTED;
        return;
      }
      const { transfer } = await client.getJson(`/hearth/v1/models/pulls/${sha256}`, transferAnswerSchema, { timeoutMs: REQUEST_TIMEOUT_MS });
      if (transfer.state === "done") {
        line.finish();
        if (options.json) printJson(transfer);
        else {
          process.stderr.write(`fetched ${transfer.modelId} (${formatBytes(transfer.totalBytes)}) from ${transfer.fromNodeId ?? "a peer"}, sha256 verified${transfer.resumes > 0 ? `, resumed ${transfer.resumes}x` : ""}\n`);
          process.stdout.write(`${transfer.modelId}\n`);
        }
        return;
      }
      if (transfer.state === "failed") {
        line.finish();
        const error = transfer.error;
        throw errors.withCode(error !== null && isHearthErrorCode(error.code) ? error.code : "HEARTH_MODEL_TRANSFER_FAILED", error?.message ?? "the transfer failed");
      }
      line.draw(formatTransferLine(transfer));
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  } finally {
    process.off("SIGINT", onSigint);
  }
}

/** One line redrawn on stderr when it is a terminal; nothing otherwise (logs stay clean). */
class RedrawnLine {
  #drawn = false;

  draw(text: string): void {
    if (!process.stderr.isTTY) return;
    process.stderr.write(`\r${text.padEnd(100).slice(0, Math.max(100, text.length))}`);
    this.#drawn = true;
  }

  finish(): void {
    if (this.#drawn) process.stderr.write("\n");
    this.#drawn = false;
  }
}
