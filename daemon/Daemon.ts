/**
 * The daemon's composition: node identity, model registry, engine, the cluster router in front
 * of it, metrics, HTTP API and the cluster service (peer links, discovery, peer table, published
 * state), started and stopped in one place and in a fixed order.
 *
 * start() assumes a fully validated configuration (daemon/config/loadConfig.ts): it creates
 * the data and models directories, loads (or creates) the node identity, builds the parts and
 * listens. A node with a cluster membership (`hearth cluster init|join`) also listens for
 * peers and runs discovery; without one it runs standalone. If any step fails, what was
 * already built is stopped again before the error is rethrown, so a failed start leaves no
 * socket open and no runner behind.
 *
 * stop() follows the shutdown order of the style guide; each step runs even if an earlier
 * one failed, because skipping "stop runners" after a failed drain would leak processes.
 * Flushing logs is the process lifecycle's job (daemon/lifecycle/processLifecycle.ts),
 * after stop() returns.
 */

import fs from "node:fs";
import path from "node:path";
import net from "node:net";
import type { Logger } from "pino";
import { errors, HearthError } from "../protocol/errors.js";
import { announcedProtocolVersion } from "./cluster/announcedProtocol.js";
import { ClusterService } from "./cluster/ClusterService.js";
import type { HearthConfig } from "./config/defaults.js";
import { LocalEngine, type EngineHooks } from "./engine/LocalEngine.js";
import { HttpApi } from "./http/HttpApi.js";
import { ClusterMembership } from "./identity/ClusterMembership.js";
import { NodeIdentity } from "./identity/NodeIdentity.js";
import { Metrics } from "./metrics/Metrics.js";
import { ModelRegistry } from "./models/ModelRegistry.js";
import { RoutingEngine } from "./routing/RoutingEngine.js";
import { JobCoordinator } from "./jobs/JobCoordinator.js";
import { JobStore } from "./jobs/JobStore.js";
import { ModelSharing } from "./sharing/ModelSharing.js";
import { RpcService } from "./rpc/RpcService.js";
import type { RpcTunnels } from "./rpc/RpcTunnels.js";
import { SplitEngine } from "./split/SplitEngine.js";

export interface DaemonOptions {
  config: HearthConfig;
  logger: Logger;
  version: string;
  /** Read for the test-only HEARTH_TEST_PROTOCOL_MAJOR knob. Default: process.env. */
  env?: NodeJS.ProcessEnv;
}

export interface DaemonAddress {
  host: string;
  port: number;
  /** Base URL of the HTTP API, e.g. http://127.0.0.1:4327. */
  url: string;
}

type DaemonState = "new" | "starting" | "running" | "stopping" | "stopped";

interface ShutdownStep {
  name: string;
  run: () => Promise<void> | void;
}

export class Daemon {
  private readonly config: HearthConfig;
  private readonly logger: Logger;
  /** Handed to the parts, which add their own `component` (a second one would duplicate the key). */
  private readonly rootLogger: Logger;
  private readonly version: string;
  private readonly env: NodeJS.ProcessEnv;
  private state: DaemonState = "new";
  private starting: Promise<DaemonAddress> | undefined;
  /** Settles when startParts() does, whatever the outcome; stop() waits on it. */
  private partsStarted: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  private registry: ModelRegistry | undefined;
  private engine: LocalEngine | undefined;
  private http: HttpApi | undefined;
  private cluster: ClusterService | undefined;
  private sharing: ModelSharing | undefined;
  /** Layer splitting's I/O (daemon/rpc/): rpc-server workers for hosts, tunnels to peers. */
  private rpc: RpcService | undefined;
  /** Split placements this node hosts (daemon/split/). */
  private split: SplitEngine | undefined;
  /** Runs jobs anywhere in the cluster (daemon/routing/); batch jobs use it too. */
  private router: RoutingEngine | undefined;
  /** Batch jobs this node coordinates (daemon/jobs/), stored under <data_dir>/jobs. */
  private jobs: JobCoordinator | undefined;
  private boundAddress: DaemonAddress | undefined;

  constructor(options: DaemonOptions) {
    this.config = options.config;
    this.rootLogger = options.logger;
    this.logger = options.logger.child({ component: "daemon" });
    this.version = options.version;
    this.env = options.env ?? process.env;
  }

  get address(): DaemonAddress | undefined {
    return this.boundAddress;
  }

  /** Host-side RPC tunnels to peers, for split placements (undefined before start). */
  get rpcTunnels(): RpcTunnels | undefined {
    return this.rpc?.tunnels;
  }

  /** The rpc-server workers this node runs for hosts, and their tensor cache (status, tests). */
  get rpcService(): RpcService | undefined {
    return this.rpc;
  }

  start(): Promise<DaemonAddress> {
    if (this.state !== "new") throw errors.internal(`the daemon cannot start from state ${this.state}`);
    this.state = "starting";
    const parts = this.startParts();
    this.partsStarted = parts.then(
      () => undefined,
      () => undefined,
    );
    this.starting = parts.then(
      (address) => {
        // A stop() that arrived mid-start wins; it is waiting for this promise.
        if (this.state === "starting") this.state = "running";
        return address;
      },
      async (error: unknown) => {
        this.logger.error({ err: error }, "start failed; stopping what was started");
        await this.stop();
        throw error;
      },
    );
    return this.starting;
  }

  private async startParts(): Promise<DaemonAddress> {
    const { config } = this;
    await makeDirectory(config.dataDir, "data_dir", 0o700);
    await makeDirectory(config.modelsDir, "models_dir", 0o755);
    const protocolVersion = announcedProtocolVersion(this.env);
    // Every node has an identity, member or not, so `hearth cluster show` and the cluster view name it.
    const identity = await NodeIdentity.loadOrCreate(config.dataDir, { logger: this.logger });
    const membership = await ClusterMembership.load(config.dataDir, { logger: this.logger });

    const registry = new ModelRegistry({
      modelsDir: config.modelsDir,
      extraPaths: config.models.extraPaths,
      aliases: config.models.aliases,
      logger: this.rootLogger,
    });
    this.registry = registry;
    // The cluster service is built after the engine it measures; the hooks reach it late.
    const hooks: EngineHooks = {
      onModelLoaded: () => this.cluster?.onModelsChanged(),
      onModelUnloaded: () => this.cluster?.onModelsChanged(),
    };
    const engine = new LocalEngine({ catalog: registry, limits: config.limits, runner: config.runner, logger: this.rootLogger, hooks });
    this.engine = engine;
    const cluster = new ClusterService({
      config,
      identity,
      membership,
      catalog: registry,
      engine,
      logger: this.rootLogger,
      softwareVersion: this.version,
      protocolVersion,
    });
    this.cluster = cluster;
    // Every API request goes through the router; the LocalEngine runs what lands on this node.
    const router = new RoutingEngine({ local: engine, cluster, logger: this.rootLogger });
    this.router = router;
    // Model sharing: serves this node's files to peers by sha256, and fetches missing ones
    // (for the router when a job lands here without its model, and for `hearth pull --from-peer`).
    const sharing = new ModelSharing({ config, cluster, catalog: registry, logger: this.rootLogger, env: this.env });
    this.sharing = sharing;
    router.setModelProvider(sharing.fetcher);
    // Layer splitting: serves this node's layers to hosts through rpc-server workers reached only
    // over peer links, and gives split placements here their tunnels to peers.
    this.rpc = new RpcService({ config, cluster, catalog: registry, logger: this.rootLogger, gpuBackend: () => cluster.gpuBackend() });
    // Split placements hosted here: the router asks it per job whether to run the job split.
    const split = new SplitEngine({
      config,
      cluster,
      catalog: registry,
      tunnels: () => this.rpc?.tunnels,
      askPeerToFetch: (peer, sha256, modelName) => sharing.askPeerToFetch(peer, sha256, modelName),
      logger: this.rootLogger,
      hooks,
    });
    this.split = split;
    router.setSplitEngine(split);
    const jobs = new JobCoordinator({
      store: new JobStore({ directory: path.join(config.dataDir, "jobs"), logger: this.rootLogger }),
      executor: router,
      config: config.jobs,
      maxEmbeddingInputs: config.limits.maxEmbeddingInputs,
      logger: this.rootLogger,
    });
    this.jobs = jobs;
    const metrics = new Metrics({ stats: () => engine.stats() });
    this.http = new HttpApi({ config, engine: router, metrics, logger: this.rootLogger, version: this.version, cluster, sharing, jobs, split });

    let bound: { host: string; port: number };
    try {
      bound = await this.http.listen();
    } catch (error) {
      throw listenError(error, config.host, config.port);
    }
    await cluster.start();
    this.rpc.start();
    // Jobs left unfinished by the last process continue; peers join them as their links come up.
    await jobs.start();
    this.http.setReady(true);
    this.boundAddress = { host: bound.host, port: bound.port, url: `http://${formatHost(bound.host)}:${bound.port}` };

    const models = await this.registry.list().catch((error: unknown) => {
      this.logger.warn({ err: error }, "could not list models");
      return [];
    });
    this.logger.info(
      {
        url: this.boundAddress.url,
        version: this.version,
        modelsDir: config.modelsDir,
        models: models.map((model) => model.id),
        auth: config.apiKey !== undefined,
        nodeId: identity.nodeId,
        cluster: membership?.clusterId ?? null,
      },
      `hearth ${this.version} listening on ${this.boundAddress.url}`,
    );
    if (models.length === 0) this.logger.warn({ modelsDir: config.modelsDir }, "no models found; add one with: hearth pull hf:<user>/<repo>/<file>.gguf");
    return this.boundAddress;
  }

  /** Graceful shutdown; safe to call at any time and more than once. */
  stop(): Promise<void> {
    this.stopping ??= this.stopParts();
    return this.stopping;
  }

  /**
   * Local generations (whole-model runners and split placements hosted here) and this node's
   * jobs running on peers drain side by side, within one drain_timeout.
   */
  private async drainWork(): Promise<void> {
    const { drainTimeoutMs } = this.config;
    const remoteDrained = this.router?.drainRemote(drainTimeoutMs);
    await Promise.all([this.engine?.stop({ drainTimeoutMs }), this.split?.stop({ drainTimeoutMs })]);
    if (remoteDrained !== undefined && !(await remoteDrained)) this.logger.warn("drain timeout reached with jobs still running on peers; they fail as the links close");
  }

  private async stopParts(): Promise<void> {
    const wasStarting = this.state === "starting";
    this.state = "stopping";
    // Let a start in progress finish (or fail) so every part it builds gets stopped below.
    if (wasStarting) await this.partsStarted;

    const steps: ShutdownStep[] = [
      // 1. Load balancers and peers stop sending work; new API requests get 503.
      { name: "readiness", run: () => this.http?.setReady(false) },
      // Batch jobs pause: in-flight items are aborted, not recorded, and run again on the next start.
      { name: "jobs", run: () => this.jobs?.stop() },
      // 2. mDNS goodbye, so peers stop dialling this node.
      { name: "discovery", run: () => this.cluster?.stopDiscovery() },
      // Model transfers stop; their partial files stay for the next start to resume.
      { name: "model transfers", run: () => this.sharing?.stop() },
      // 4 + 5. Drain in-flight generations up to drain_timeout, abort the rest, stop runners. This
      // comes before the links close: jobs peers sent here must deliver their results, and this
      // node's clients' jobs running on peers need their links. New work is refused meanwhile
      // (HEARTH_SHUTTING_DOWN), which peers retry elsewhere.
      { name: "engine", run: () => this.drainWork() },
      // 3. Close peer links with code 1001 (HEARTH_SHUTTING_DOWN), then the peer listener. Split
      // runners were stopped in the drain, while their tunnels still stood, so no recovery starts.
      { name: "peer links", run: () => this.cluster?.stopLinks() },
      // Tunnel listeners close and rpc-server workers stop (their hosts' links are gone now).
      { name: "rpc workers", run: () => this.rpc?.stop() },
      // Background work (state publishing, hashing, a speed measurement in flight, the GPU probe).
      { name: "cluster", run: () => this.cluster?.stop() },
      // Only now close HTTP: closing earlier would cut off the streams being drained.
      { name: "http", run: () => this.http?.close() },
    ];
    for (const step of steps) {
      const started = Date.now();
      try {
        await step.run();
        this.logger.debug({ step: step.name, ms: Date.now() - started }, "shutdown step done");
      } catch (error) {
        this.logger.error({ err: error, step: step.name }, "shutdown step failed; continuing");
      }
    }
    this.state = "stopped";
    this.logger.info("stopped");
  }
}

async function makeDirectory(directory: string, key: string, mode: number): Promise<void> {
  try {
    await fs.promises.mkdir(directory, { recursive: true, mode });
  } catch (error) {
    throw errors.configInvalid(`${key}: cannot create ${directory}: ${(error as Error).message}`, { param: key, cause: error });
  }
}

const LISTEN_REASONS: Record<string, string> = {
  EADDRINUSE: "the address is already in use (is another hearth serve running? choose another --port)",
  EACCES: "permission denied (ports below 1024 need privileges)",
  EADDRNOTAVAIL: "this machine has no such address",
  ENOTFOUND: "the host name does not resolve",
  EAI_AGAIN: "the host name does not resolve",
};

function listenError(error: unknown, host: string, port: number): HearthError {
  if (error instanceof HearthError) return error;
  const code = (error as NodeJS.ErrnoException).code;
  const reason = code !== undefined ? LISTEN_REASONS[code] : undefined;
  if (reason !== undefined) {
    return errors.configInvalid(`cannot listen on ${formatHost(host)}:${port}: ${reason}`, { param: "port", cause: error });
  }
  return HearthError.from(error);
}

function formatHost(host: string): string {
  return net.isIPv6(host) ? `[${host}]` : host;
}
