/**
 * The daemon's HTTP server: the OpenAI-compatible API, health, metrics and status.
 *
 * Owns the listening socket and the order every request goes through: Host check (DNS
 * rebinding) → API key → route (404/405) → handler. Handlers throw; this file turns what
 * they throw into a response, so a bad request can never take the daemon down. Every
 * answered request is counted in the metrics by route and status.
 */

import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import { errors, HearthError } from "../../protocol/errors.js";
import type { HearthConfig } from "../config/defaults.js";
import type { InferenceEngine } from "../engine/types.js";
import type { JobCoordinator } from "../jobs/JobCoordinator.js";
import type { Metrics } from "../metrics/Metrics.js";
import { hasValidApiKey, requiresApiKey } from "./authGuard.js";
import type { LocalModelsSource } from "../models/LocalModelAdmin.js";
import type { ModelSharingSource } from "../sharing/ModelSharing.js";
import type { ClusterSource, HttpServices, PlanSource, RequestContext, ResponseRecords, SplitSource } from "./context.js";
import { apiFamilyOf } from "./apiFamily.js";
import { sendError } from "./errorResponder.js";
import { handleChatCompletions } from "./handlers/chatCompletions.js";
import { handleCluster, handleClusterDiagnostics } from "./handlers/cluster.js";
import { handlePlan } from "./handlers/plan.js";
import { handleCompletions } from "./handlers/completions.js";
import { handleEmbeddings } from "./handlers/embeddings.js";
import { handleHealth } from "./handlers/health.js";
import { handleCancelJob, handleGetJob, handleJobOutput, handleListJobs, handleSubmitJob } from "./handlers/jobs.js";
import { handleCountTokens, handleMessages } from "./handlers/messages.js";
import { handleMetrics } from "./handlers/metrics.js";
import { handleGetModel, handleListModels } from "./handlers/models.js";
import { handleGetPull, handleListPulls, handlePullModel } from "./handlers/modelPulls.js";
import { handleCancelResponse, handleCreateResponse, handleDeleteResponse, handleGetResponse, handleListInputItems } from "./handlers/responses.js";
import { handleStatus } from "./handlers/status.js";
import { handleOllamaPs, handleOllamaShow, handleOllamaTags, handleOllamaVersion } from "./handlers/ollama/catalog.js";
import { handleOllamaEmbed, handleOllamaEmbeddings } from "./handlers/ollama/embeddings.js";
import { handleOllamaChat, handleOllamaGenerate } from "./handlers/ollama/generation.js";
import { handleOllamaCopy, handleOllamaDelete } from "./handlers/ollama/manage.js";
import { handleOllamaPull } from "./handlers/ollama/pull.js";
import { createRootHandler } from "./handlers/ollama/root.js";
import { HostGuard } from "./hostGuard.js";
import { requestPath, Router } from "./router.js";

export interface HttpApiOptions {
  config: HearthConfig;
  engine: InferenceEngine;
  metrics: Metrics;
  logger: Logger;
  version?: string;
  cluster?: ClusterSource;
  jobs?: JobCoordinator;
  sharing?: ModelSharingSource;
  split?: SplitSource;
  plans?: PlanSource;
  localModels?: LocalModelsSource;
  responses?: ResponseRecords;
}

/** Metrics label for requests that matched no route (keeps label values bounded). */
const UNMATCHED_ENDPOINT = "unmatched";

/** Status recorded for a request whose client left before the response finished (nginx's convention). */
const CLIENT_CLOSED_STATUS = 499;

export function createRouter(): Router {
  return new Router()
    .add("GET", "/health", handleHealth)
    .add("GET", "/metrics", handleMetrics)
    .add("GET", "/v1/models", handleListModels)
    .add("GET", "/v1/models/:id", handleGetModel)
    .add("POST", "/v1/chat/completions", handleChatCompletions)
    .add("POST", "/v1/completions", handleCompletions)
    .add("POST", "/v1/embeddings", handleEmbeddings)
    // The Responses API (handlers/responses.ts).
    .add("POST", "/v1/responses", handleCreateResponse)
    .add("GET", "/v1/responses/:id", handleGetResponse)
    .add("DELETE", "/v1/responses/:id", handleDeleteResponse)
    .add("POST", "/v1/responses/:id/cancel", handleCancelResponse)
    .add("GET", "/v1/responses/:id/input_items", handleListInputItems)
    // Anthropic Messages (protocol/anthropic/)
    .add("POST", "/v1/messages", handleMessages)
    .add("POST", "/v1/messages/count_tokens", handleCountTokens)
    .add("GET", "/hearth/v1/status", handleStatus)
    .add("GET", "/hearth/v1/cluster", handleCluster)
    .add("GET", "/hearth/v1/cluster/diagnostics", handleClusterDiagnostics)
    .add("GET", "/hearth/v1/plan", handlePlan)
    .add("POST", "/hearth/v1/jobs", handleSubmitJob)
    .add("GET", "/hearth/v1/jobs", handleListJobs)
    .add("GET", "/hearth/v1/jobs/:id", handleGetJob)
    .add("POST", "/hearth/v1/jobs/:id/cancel", handleCancelJob)
    .add("GET", "/hearth/v1/jobs/:id/output", handleJobOutput)
    .add("POST", "/hearth/v1/models/pull", handlePullModel)
    .add("GET", "/hearth/v1/models/pulls", handleListPulls)
    .add("GET", "/hearth/v1/models/pulls/:sha256", handleGetPull)
    // Ollama's native API (handlers/ollama/); `/` answers Ollama's probe.
    .add("GET", "/", createRootHandler())
    .add("POST", "/api/chat", handleOllamaChat)
    .add("POST", "/api/generate", handleOllamaGenerate)
    .add("POST", "/api/embed", handleOllamaEmbed)
    .add("POST", "/api/embeddings", handleOllamaEmbeddings)
    .add("GET", "/api/tags", handleOllamaTags)
    .add("POST", "/api/show", handleOllamaShow)
    .add("GET", "/api/ps", handleOllamaPs)
    .add("GET", "/api/version", handleOllamaVersion)
    .add("POST", "/api/pull", handleOllamaPull)
    .add("POST", "/api/copy", handleOllamaCopy)
    .add("DELETE", "/api/delete", handleOllamaDelete);
}

export class HttpApi {
  private readonly config: HearthConfig;
  private readonly log: Logger;
  private readonly metrics: Metrics;
  private readonly server: http.Server;
  private readonly router = createRouter();
  private readonly hostGuard: HostGuard;
  private readonly services: HttpServices;
  private ready = true;
  private closing = false;
  private bound: { host: string; port: number } | undefined;

  constructor(options: HttpApiOptions) {
    this.config = options.config;
    this.metrics = options.metrics;
    this.log = options.logger.child({ component: "http" });
    this.hostGuard = new HostGuard({ boundHost: options.config.host, allowedHosts: options.config.allowedHosts });
    this.services = {
      config: options.config,
      engine: options.engine,
      metrics: options.metrics,
      version: options.version ?? "unknown",
      startedAtMs: Date.now(),
      isReady: () => this.ready,
      address: () => this.bound ?? { host: options.config.host, port: options.config.port },
      ...(options.cluster === undefined ? {} : { cluster: options.cluster }),
      ...(options.jobs === undefined ? {} : { jobs: options.jobs }),
      ...(options.sharing === undefined ? {} : { sharing: options.sharing }),
      ...(options.split === undefined ? {} : { split: options.split }),
      ...(options.plans === undefined ? {} : { plans: options.plans }),
      ...(options.localModels === undefined ? {} : { localModels: options.localModels }),
      ...(options.responses === undefined ? {} : { responses: options.responses }),
    };
    this.server = http.createServer((req, res) => this.handle(req, res));
    this.server.on("clientError", (error, socket) => {
      // Malformed HTTP never reaches a handler; answer it and drop the socket.
      this.log.debug({ err: error }, "malformed HTTP request");
      if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
      else socket.destroy();
    });
  }

  /** /health answers 503 while not ready; the daemon flips this first on shutdown. */
  setReady(ready: boolean): void {
    this.ready = ready;
  }

  listen(): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error): void => reject(error);
      this.server.once("error", onError);
      this.server.listen(this.config.port, this.config.host, () => {
        this.server.off("error", onError);
        const address = this.server.address() as AddressInfo;
        this.bound = { host: this.config.host, port: address.port };
        this.log.info({ host: this.config.host, port: address.port, auth: this.config.apiKey !== undefined }, "HTTP API listening");
        resolve(this.bound);
      });
    });
  }

  /**
   * Stops accepting connections and ends idle keep-alive sockets. Requests in flight may
   * finish (the engine's drain ends them); sockets still open after drainTimeoutMs are cut.
   */
  close(): Promise<void> {
    if (!this.server.listening) return Promise.resolve();
    this.closing = true;
    return new Promise((resolve) => {
      const force = setTimeout(() => this.server.closeAllConnections(), this.config.drainTimeoutMs);
      force.unref();
      this.server.close(() => {
        clearTimeout(force);
        this.log.info("HTTP API closed");
        resolve();
      });
      this.server.closeIdleConnections();
    });
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const startedAt = Date.now();
    const path = requestPath(req.url);
    let endpoint = UNMATCHED_ENDPOINT;
    const log = this.log.child({ method: req.method, path });
    const family = apiFamilyOf(path, req.headers);
    if (this.closing) res.setHeader("connection", "close");
    res.once("close", () => {
      const status = res.writableFinished ? res.statusCode : CLIENT_CLOSED_STATUS;
      this.metrics.recordHttpRequest(endpoint, status);
      log.debug({ endpoint, status, ms: Date.now() - startedAt }, "request done");
    });

    const route = (): Promise<void> => {
      const match = this.router.match(req.method ?? "", path);
      if (match.kind !== "notFound") endpoint = match.name;
      if (!this.hostGuard.isAllowed(req.headers.host)) {
        throw errors.forbiddenHost(`The Host header ${JSON.stringify(req.headers.host ?? "")} does not name this node.`);
      }
      if (this.config.apiKey !== undefined && requiresApiKey(path) && !hasValidApiKey(req.headers, this.config.apiKey)) {
        res.setHeader("www-authenticate", 'Bearer realm="hearth"');
        throw errors.unauthorized("A valid API key is required: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'.");
      }
      if (match.kind === "notFound") throw errors.notFound(`No endpoint at ${path}.`);
      if (match.kind === "methodNotAllowed") {
        res.setHeader("allow", match.allow.join(", "));
        throw errors.methodNotAllowed(`${match.name} does not accept ${req.method ?? "this method"}; use ${match.allow.join(" or ")}.`);
      }
      if (!this.ready && match.method !== "GET") {
        // Work accepted now could not finish before the drain ends; send it elsewhere or later.
        throw errors.shuttingDown(this.config.limits.retryAfterSeconds);
      }
      const context: RequestContext = { req, res, params: match.params, log, services: this.services, family };
      return match.handler(context);
    };

    // Synchronous throws (guards) and async rejections (handlers) end up in the same place.
    new Promise<void>((resolve) => resolve(route()))
      .catch((error: unknown) => {
        if (isOversizedBody(error)) res.setHeader("connection", "close");
        sendError(res, error, log, family);
      })
      .catch((error: unknown) => {
        log.error({ err: error }, "failed to send an error response");
        res.destroy();
      });
  }
}

/** After a 413 the unread rest of the body is still on the socket; the connection cannot be reused. */
function isOversizedBody(error: unknown): boolean {
  return error instanceof HearthError && error.code === "HEARTH_BODY_TOO_LARGE";
}
