/**
 * The CLI's HTTP client for a running daemon.
 *
 * It finds the daemon the way `hearth serve` would listen: --url, else HEARTH_URL, else host
 * and port from the same config file. It sends the API key (HEARTH_API_KEY or the configured
 * api_key_file) as a Bearer token. Failures become HearthErrors: a daemon that does not
 * answer is HEARTH_DAEMON_UNREACHABLE (exit 3), an error body from the daemon keeps its code,
 * and an answer that does not fit its contract (cli/responseShape.ts) is HEARTH_INTERNAL.
 */

import { z } from "zod";
import { errors, HearthError, type HearthErrorCode, isHearthErrorCode } from "../protocol/errors.js";
import type { LocalMachine } from "./localMachine.js";
import { checkShape } from "./responseShape.js";

export interface ClientTargetOptions {
  url?: string | undefined;
  config?: string | undefined;
  env?: NodeJS.ProcessEnv;
}

export interface DaemonTarget {
  /** Without a trailing slash, e.g. http://127.0.0.1:4327. */
  baseUrl: string;
  apiKey: string | undefined;
  /** Warnings from reading the config (e.g. a key file readable by others). */
  warnings: string[];
}

/**
 * The config file is read even when --url or HEARTH_URL names the daemon: it may hold the API
 * key, and a broken one is reported like for any other command.
 */
export async function resolveDaemonTarget(machine: Pick<LocalMachine, "clientSettings">, options: ClientTargetOptions = {}): Promise<DaemonTarget> {
  const env = options.env ?? process.env;
  const warnings: string[] = [];
  const settings = await machine.clientSettings({ env, configFile: options.config, onWarning: (warning) => warnings.push(warning) });
  const explicit = options.url ?? (env["HEARTH_URL"] || undefined);
  let baseUrl: string;
  if (explicit !== undefined) {
    let parsed: URL;
    try {
      parsed = new URL(explicit);
    } catch {
      throw errors.cliUsage(`${options.url !== undefined ? "--url" : "HEARTH_URL"}: not a URL: ${explicit}`);
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
      throw errors.cliUsage(`${options.url !== undefined ? "--url" : "HEARTH_URL"}: expected an http:// or https:// URL, got ${explicit}`);
    }
    baseUrl = `${parsed.origin}${parsed.pathname.replace(/\/+$/, "")}`;
  } else {
    baseUrl = settings.url;
  }
  return { baseUrl, apiKey: settings.apiKey, warnings };
}

/**
 * The client of a command that talks to the daemon its --url and --config name. The
 * configuration's warnings go to stderr first, so they are seen even when the daemon is down.
 */
export async function daemonClientFor(machine: Pick<LocalMachine, "clientSettings">, options: Omit<ClientTargetOptions, "env">): Promise<DaemonClient> {
  const target = await resolveDaemonTarget(machine, { url: options.url, config: options.config });
  for (const warning of target.warnings) process.stderr.write(`warning: ${warning}\n`);
  return new DaemonClient(target);
}

export const NETWORK_REASONS: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ENOTFOUND: "the host name does not resolve",
  EAI_AGAIN: "the host name does not resolve",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ECONNRESET: "connection reset",
  ETIMEDOUT: "timed out",
  UND_ERR_CONNECT_TIMEOUT: "connection timed out",
  UND_ERR_SOCKET: "connection closed",
};

/**
 * The contract of OpenAI's endpoints (/v1/*) as far as the CLI checks it: not at all. It
 * prints those bodies as they came or reads one optional field of a chunk; the contracts it
 * checks are Hearth's own (protocol/api/).
 */
export const OPENAI_BODY: z.ZodType<unknown> = z.unknown();

export interface RequestOptions {
  signal?: AbortSignal;
  /** Gives up (as unreachable) when the daemon has not answered within this time. */
  timeoutMs?: number;
}

export class DaemonClient {
  constructor(readonly target: DaemonTarget) {}

  get baseUrl(): string {
    return this.target.baseUrl;
  }

  /** GETs `path` and reads its JSON answer, checked against `contract`. */
  async getJson<T>(path: string, contract: z.ZodType<T>, options: RequestOptions = {}): Promise<T> {
    const response = await this.request(path, { method: "GET" }, options);
    return checkShape(contract, await this.readJson(response), `GET ${withoutQuery(path)}`);
  }

  async postJson<T>(path: string, body: unknown, contract: z.ZodType<T>, options: RequestOptions = {}): Promise<T> {
    const response = await this.request(path, { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json" } }, options);
    return checkShape(contract, await this.readJson(response), `POST ${withoutQuery(path)}`);
  }

  /** POSTs a raw body (a JSONL batch) and reads the JSON answer. */
  async postBytes<T>(path: string, body: Uint8Array, contentType: string, contract: z.ZodType<T>, options: RequestOptions = {}): Promise<T> {
    const response = await this.request(path, { method: "POST", body, headers: { "content-type": contentType } }, options);
    return checkShape(contract, await this.readJson(response), `POST ${withoutQuery(path)}`);
  }

  async getText(path: string, options: RequestOptions = {}): Promise<string> {
    const response = await this.request(path, { method: "GET" }, options);
    return response.text();
  }

  /** POSTs and yields each `data:` payload of the server-sent event stream until [DONE]. */
  async *postEventStream(path: string, body: unknown, options: RequestOptions = {}): AsyncGenerator<unknown> {
    const response = await this.request(
      path,
      { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json", accept: "text/event-stream" } },
      options,
    );
    if (!response.body) throw errors.internal(`the daemon at ${this.baseUrl} sent an empty response`);
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for await (const chunk of response.body) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true }).replace(/\r\n?/g, "\n");
        let boundary: number;
        while ((boundary = buffer.indexOf("\n\n")) !== -1) {
          const event = buffer.slice(0, boundary);
          buffer = buffer.slice(boundary + 2);
          const data = event
            .split("\n")
            .filter((line) => line.startsWith("data:"))
            .map((line) => line.slice(5).replace(/^ /, ""))
            .join("\n");
          if (data === "") continue; // comments such as ": keepalive"
          if (data === "[DONE]") return;
          const payload = parseJson(data, this.baseUrl);
          const error = (payload as { error?: unknown } | null)?.error;
          if (error !== undefined) throw errorFromBody(payload, 500, this.baseUrl);
          yield payload;
        }
      }
    } catch (error) {
      throw this.translateFailure(error, options);
    }
    throw errors.internal(`the daemon at ${this.baseUrl} ended the stream before [DONE]`);
  }

  private async request(path: string, init: RequestInit, options: RequestOptions): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.target.apiKey !== undefined) headers.set("authorization", `Bearer ${this.target.apiKey}`);
    const signals = [options.signal, options.timeoutMs === undefined ? undefined : AbortSignal.timeout(options.timeoutMs)].filter(
      (signal): signal is AbortSignal => signal !== undefined,
    );
    let response: Response;
    try {
      response = await fetch(`${this.baseUrl}${path}`, { ...init, headers, ...(signals.length > 0 ? { signal: AbortSignal.any(signals) } : {}) });
    } catch (error) {
      throw this.translateFailure(error, options);
    }
    if (!response.ok) {
      const text = await response.text().catch(() => "");
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        body = undefined;
      }
      throw errorFromBody(body, response.status, this.baseUrl);
    }
    return response;
  }

  private async readJson(response: Response): Promise<unknown> {
    const text = await response.text();
    return parseJson(text, this.baseUrl);
  }

  private translateFailure(error: unknown, options: RequestOptions): HearthError {
    if (error instanceof HearthError) return error;
    if (options.signal?.aborted) return errors.cancelled("cancelled");
    const name = (error as { name?: unknown }).name;
    if (name === "TimeoutError") {
      return errors.daemonUnreachable(`the daemon at ${this.baseUrl} did not answer within ${options.timeoutMs} ms`, { cause: error });
    }
    const code = networkErrorCode(error);
    if (code !== undefined) {
      const reason = NETWORK_REASONS[code] ?? code;
      return errors.daemonUnreachable(`no Hearth daemon answers at ${this.baseUrl} (${reason}); start one with: hearth serve`, { cause: error });
    }
    return HearthError.from(error);
  }
}

/** fetch wraps socket errors: TypeError("fetch failed", {cause: {code: "ECONNREFUSED"}}), sometimes nested. */
export function networkErrorCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current !== null && typeof current === "object"; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string" && (code in NETWORK_REASONS || code.startsWith("E") || code.startsWith("UND_ERR"))) return code;
    const errors = (current as { errors?: unknown }).errors;
    if (Array.isArray(errors) && errors.length > 0) current = errors[0];
    else current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/** A short reason for a failed fetch: the socket error if there is one, else fetch's own cause. */
export function describeFetchFailure(error: unknown): string {
  const code = networkErrorCode(error);
  if (code !== undefined) return NETWORK_REASONS[code] ?? code;
  const cause = (error as { cause?: unknown }).cause;
  if (cause instanceof Error && cause.message !== "") return cause.message;
  return error instanceof Error ? error.message : String(error);
}

/** Messages name the endpoint, not the values a user put in its query. */
function withoutQuery(path: string): string {
  return path.split("?")[0] ?? path;
}

function parseJson(text: string, baseUrl: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw errors.internal(`the daemon at ${baseUrl} sent a response that is not JSON`, { cause: error });
  }
}

const CODE_BY_STATUS: Record<number, HearthErrorCode> = {
  400: "HEARTH_INVALID_REQUEST",
  401: "HEARTH_UNAUTHORIZED",
  403: "HEARTH_FORBIDDEN_HOST",
  404: "HEARTH_NOT_FOUND",
  413: "HEARTH_BODY_TOO_LARGE",
  429: "HEARTH_QUEUE_FULL",
  503: "HEARTH_SHUTTING_DOWN",
};

/** An error answer from the daemon, with its whole body (e.g. the invalid lines of a refused batch). */
export class DaemonResponseError extends HearthError {
  constructor(
    code: HearthErrorCode,
    message: string,
    options: { param: string | null },
    readonly body: unknown,
  ) {
    super(code, message, options);
  }
}

/** The daemon's OpenAI-style error body, as a HearthError with the same code. */
function errorFromBody(body: unknown, status: number, baseUrl: string): HearthError {
  const error = (body as { error?: { code?: unknown; message?: unknown; param?: unknown } } | undefined)?.error;
  const code = isHearthErrorCode(error?.code) ? error.code : (CODE_BY_STATUS[status] ?? "HEARTH_INTERNAL");
  let message = typeof error?.message === "string" ? error.message : `the daemon at ${baseUrl} answered HTTP ${status}`;
  if (code === "HEARTH_UNAUTHORIZED") message += " (set HEARTH_API_KEY or api_key_file in config.toml)";
  return new DaemonResponseError(code, message, { param: typeof error?.param === "string" ? error.param : null }, body);
}
