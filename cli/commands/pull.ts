/**
 * `hearth pull hf:user/repo/file.gguf`: downloads a model into the models dir.
 * (`hearth pull MODEL --from-peer` fetches from a cluster peer instead: pullFromPeer.ts.)
 *
 * node-llama-cpp's downloader (ipull) does the transfer, with resume and split-file support
 * (on this machine's side: LocalMachine.models, cli/localMachine.ts). Two things are added
 * around it:
 * - a reachability probe first: ipull retries a failed request 150 times with backoff (about
 *   ten minutes), so an offline machine or a typo in the repo would look like a hang. The
 *   probe turns those into an immediate HEARTH_DOWNLOAD_FAILED that says what is wrong;
 * - the file name always comes from the URI the user typed, never from the server, so
 *   nothing from the network becomes a path.
 * Progress is drawn on stderr (when it is a terminal); stdout gets only the saved path.
 */

import path from "node:path";
import type { Command } from "commander";
import { errors } from "../../protocol/errors.js";
import { describeFetchFailure, networkErrorCode } from "../client.js";
import type { LocalMachine } from "../localMachine.js";
import type { ClientCommandOptions } from "../options.js";
import { formatBytes } from "../output.js";
import { pullFromPeer } from "./pullFromPeer.js";

/** How long the reachability probe waits for the server's first answer. */
const PROBE_TIMEOUT_MS = 15_000;
/** A transfer that makes no progress for this long is given up. */
const STALL_TIMEOUT_MS = 60_000;
const PROGRESS_REDRAW_MS = 200;

/** --url and --json are the client options of --from-peer; --config serves both ways. */
interface PullOptions extends ClientCommandOptions {
  modelsDir?: string;
  fromPeer?: boolean;
}

export interface ParsedModelUri {
  /** The URI as given. */
  uri: string;
  /** URL the file is fetched from (for the probe and messages). */
  url: string;
  /** Local file name, from the URI's last path segment. */
  fileName: string;
  /** Host to name when it cannot be reached. */
  host: string;
}

const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*\.gguf$/i;
const HF_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Hugging Face endpoint, resolved the way node-llama-cpp does so the probe hits the same server. */
export function huggingFaceEndpoint(env: NodeJS.ProcessEnv = process.env): string {
  for (const candidate of [env["MODEL_ENDPOINT"], env["HF_ENDPOINT"]]) {
    if (candidate && /^https?:\/\//.test(candidate)) return candidate.endsWith("/") ? candidate : `${candidate}/`;
  }
  return "https://huggingface.co/";
}

/** Accepts hf:<user>/<repo>/<path/to/file>.gguf[#branch] and http(s)://.../<file>.gguf. */
export function parseModelUri(uri: string, env: NodeJS.ProcessEnv = process.env): ParsedModelUri {
  const usage = (reason: string) =>
    errors.cliUsage(`${reason}: ${JSON.stringify(uri)}; expected hf:<user>/<repo>/<file>.gguf or https://<host>/<path>/<file>.gguf`, {
      param: "uri",
    });
  if (uri.startsWith("hf:")) {
    const [location = "", branch, ...extra] = uri.slice(3).split("#");
    if (extra.length > 0 || (branch !== undefined && !/^[A-Za-z0-9._/-]+$/.test(branch))) throw usage("bad branch in the model URI");
    const segments = location.split("/");
    if (segments.length < 3) throw usage("a Hugging Face URI needs a user, a repo and a file");
    if (!segments.every((segment) => HF_NAME.test(segment) && segment !== "." && segment !== "..")) throw usage("bad path segment in the model URI");
    const [user, repo, ...filePath] = segments as [string, string, ...string[]];
    const fileName = filePath.at(-1) ?? "";
    if (!FILE_NAME.test(fileName)) throw usage("the model URI must name a .gguf file");
    const endpoint = huggingFaceEndpoint(env);
    return { uri, url: `${endpoint}${user}/${repo}/resolve/${branch ?? "main"}/${filePath.join("/")}`, fileName, host: new URL(endpoint).host };
  }
  if (/^https?:\/\//i.test(uri)) {
    let parsed: URL;
    try {
      parsed = new URL(uri);
    } catch {
      throw usage("not a valid URL");
    }
    const fileName = decodeURIComponent(parsed.pathname.split("/").at(-1) ?? "");
    if (!FILE_NAME.test(fileName)) throw usage("the URL must end in a .gguf file name");
    return { uri, url: parsed.href, fileName, host: parsed.host };
  }
  throw usage("unsupported model URI");
}

export function registerPullCommand(program: Command, machine: LocalMachine): void {
  program
    .command("pull")
    .description("download a GGUF model into the models dir, or with --from-peer have the daemon fetch it from a cluster peer")
    .argument("<uri>", "hf:<user>/<repo>/<file>.gguf[#branch] or https://.../<file>.gguf; with --from-peer a model id or sha256 from the peers' model lists")
    .option("--models-dir <dir>", "where to save it (default: from the config file; not with --from-peer)")
    .option("--config <file>", "config file (default: $XDG_CONFIG_HOME/hearth/config.toml)")
    .option("--from-peer", "fetch MODEL from a peer that has it, through the running daemon")
    .option("--url <url>", "with --from-peer: daemon URL (default: HEARTH_URL, else host and port from the config file)")
    .option("--json", "with --from-peer: print the finished transfer as JSON")
    .action((uri: string, options: PullOptions) => pull(machine, uri, options));
}

async function pull(machine: LocalMachine, uri: string, options: PullOptions): Promise<void> {
  if (options.fromPeer === true) {
    if (options.modelsDir !== undefined) throw errors.cliUsage("--models-dir does not apply to --from-peer: the daemon saves into its own models dir", { param: "models-dir" });
    await pullFromPeer(machine, uri, { ...(options.url === undefined ? {} : { url: options.url }), ...(options.config === undefined ? {} : { config: options.config }), json: options.json === true });
    return;
  }
  if (options.url !== undefined || options.json === true) throw errors.cliUsage("--url and --json apply only to --from-peer", { param: options.url !== undefined ? "url" : "json" });
  const model = parseModelUri(uri);
  const modelsDir = await machine.models.directory({ configFile: options.config, modelsDir: options.modelsDir });
  await probe(model);

  const download = await machine.models.downloader();
  const progress = new ProgressLine(model.fileName);
  const controller = new AbortController();
  let lastProgressAt = Date.now();
  let stalled = false;
  const watchdog = setInterval(() => {
    if (Date.now() - lastProgressAt > STALL_TIMEOUT_MS) {
      stalled = true;
      controller.abort();
    }
  }, 1000);
  const onSigint = () => controller.abort();
  process.once("SIGINT", onSigint);
  try {
    const saved = await download({
      uri: model.uri,
      directory: modelsDir,
      fileName: model.fileName,
      signal: controller.signal,
      onProgress: (done, total) => {
        lastProgressAt = Date.now();
        progress.update(done, total);
      },
    });
    progress.finish();
    process.stderr.write(`saved ${path.basename(saved.path)} (${formatBytes(saved.sizeBytes)}) to ${path.dirname(saved.path)}\n`);
    process.stdout.write(`${saved.path}\n`);
  } catch (error) {
    progress.finish();
    if (stalled) throw errors.downloadFailed(`downloading ${model.uri} stalled: no data for ${STALL_TIMEOUT_MS / 1000} s`, { cause: error });
    if (controller.signal.aborted) throw errors.cancelled(`download of ${model.uri} cancelled`);
    throw errors.downloadFailed(`could not download ${model.uri}: ${(error as Error).message}`, { cause: error });
  } finally {
    clearInterval(watchdog);
    process.off("SIGINT", onSigint);
  }
}

/** Socket errors that mean "no network" rather than "that server is down". */
const OFFLINE_CODES = new Set(["ENOTFOUND", "EAI_AGAIN", "ENETUNREACH", "EHOSTUNREACH"]);

/** Fails fast, with a reason a person can act on, where ipull would retry for minutes. */
async function probe(model: ParsedModelUri): Promise<void> {
  const headers: Record<string, string> = {};
  const token = process.env["HF_TOKEN"];
  if (token && model.uri.startsWith("hf:")) headers["authorization"] = `Bearer ${token}`;
  let response: Response;
  try {
    response = await fetch(model.url, { method: "HEAD", headers, redirect: "follow", signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
  } catch (error) {
    const timedOut = (error as { name?: unknown }).name === "TimeoutError";
    const reason = timedOut ? `no answer within ${PROBE_TIMEOUT_MS / 1000} s` : describeFetchFailure(error);
    const offline = timedOut || OFFLINE_CODES.has(networkErrorCode(error) ?? "");
    throw errors.downloadFailed(`cannot reach ${model.host} to download ${model.uri} (${reason})${offline ? "; is this machine offline?" : ""}`, {
      cause: error,
    });
  }
  await response.body?.cancel();
  if (response.ok) return;
  const hint =
    response.status === 404
      ? "no such file: check the user, repo and file name"
      : response.status === 401 || response.status === 403
        ? "access denied: the repo may be gated or private (set HF_TOKEN)"
        : `the server answered HTTP ${response.status}`;
  throw errors.downloadFailed(`could not download ${model.uri}: ${hint} (HTTP ${response.status} from ${model.host})`);
}

/** One redrawn line on stderr when it is a terminal; silent otherwise (logs stay clean). */
class ProgressLine {
  private lastDraw = 0;
  private drawn = false;

  constructor(private readonly label: string) {}

  update(done: number, total: number): void {
    if (!process.stderr.isTTY) return;
    const now = Date.now();
    if (now - this.lastDraw < PROGRESS_REDRAW_MS && done < total) return;
    this.lastDraw = now;
    const fraction = total > 0 ? Math.min(1, done / total) : 0;
    const width = 30;
    const filled = Math.round(fraction * width);
    const bar = `${"#".repeat(filled)}${"-".repeat(width - filled)}`;
    process.stderr.write(`\r${this.label} [${bar}] ${(fraction * 100).toFixed(1)}% ${formatBytes(done)} / ${formatBytes(total)}`);
    this.drawn = true;
  }

  finish(): void {
    if (this.drawn) process.stderr.write("\n");
    this.drawn = false;
  }
}
