/**
 * The daemon's composition, read top to bottom: construct every part with what it depends
 * on, start them in order, stop them in (about) reverse order. No part is reached late: each
 * gets its dependencies in its constructor, reacts to the others through their events, and
 * declares what peers can reach as `peerRoutes`, which go into one table here before the
 * links start. docs/architecture.md draws the path of a request through these parts.
 *
 * start() assumes a fully validated configuration (daemon/config/loadConfig.ts): it creates
 * the data and models directories, loads (or creates) the node identity, builds the parts and
 * starts them. A node with a cluster membership (`hearth cluster init|join`) also listens for
 * peers and runs discovery; without one it runs standalone. If any step fails, what was
 * already started is stopped again before the error is rethrown, so a failed start leaves no
 * socket open and no runner behind.
 *
 * stop() follows the shutdown order of docs/architecture.md ("Shutdown"); each step runs even
 * if an earlier one failed, because skipping "stop runners" after a failed drain would leak
 * processes. Flushing logs is the process lifecycle's job (daemon/lifecycle/processLifecycle.ts),
 * after stop() returns.
 */

import fs from "node:fs";
import path from "node:path";
import type { Logger } from "pino";
import { errors } from "../protocol/errors.js";
import type { ProtocolVersion } from "../protocol/peer/version.js";
import { announcedProtocolVersion } from "./cluster/announcedProtocol.js";
import { ClusterViews } from "./cluster/ClusterViews.js";
import { LocalStatePublisher } from "./cluster/LocalStatePublisher.js";
import { ModelHashes } from "./cluster/ModelHashes.js";
import { SpeedScores } from "./cluster/SpeedScores.js";
import { RESPONSES_DIR_NAME, type HearthConfig } from "./config/defaults.js";
import { LocalEngine } from "./engine/LocalEngine.js";
import { kernelEnvironment } from "./engine/kernelEnvironment.js";
import { ResourceProbe } from "./hardware/ResourceProbe.js";
import { HttpApi } from "./http/HttpApi.js";
import { listenError } from "./lifecycle/listenError.js";
import { formatHostPort } from "./peers/wire.js";
import { ClusterMembership } from "./identity/ClusterMembership.js";
import { NodeIdentity } from "./identity/NodeIdentity.js";
import { JobCoordinator } from "./jobs/JobCoordinator.js";
import { JobStore } from "./jobs/JobStore.js";
import { Metrics } from "./metrics/Metrics.js";
import { AliasStore } from "./models/AliasStore.js";
import { LocalModelAdmin } from "./models/LocalModelAdmin.js";
import { ModelRegistry } from "./models/ModelRegistry.js";
import { ResponseStore } from "./responses/ResponseStore.js";
import { PeerFabric } from "./peers/PeerFabric.js";
import { PeerRouteTable } from "./peers/PeerRouteTable.js";
import { ClusterStateSource } from "./routing/ClusterState.js";
import { RoutingEngine } from "./routing/RoutingEngine.js";
import { RpcService } from "./rpc/RpcService.js";
import type { RpcTunnels } from "./rpc/RpcTunnels.js";
import { ModelSharing } from "./sharing/ModelSharing.js";
import { ModelLayouts } from "./split/modelLayouts.js";
import { SplitEngine } from "./split/SplitEngine.js";

export interface DaemonOptions {
  config: HearthConfig;
  logger: Logger;
  version: string;
  /** Read for the test-only HEARTH_TEST_PROTOCOL_MAJOR and fault knobs. Default: process.env. */
  env?: NodeJS.ProcessEnv;
}

export interface DaemonAddress {
  host: string;
  port: number;
  /** Base URL of the HTTP API, e.g. http://127.0.0.1:4327. */
  url: string;
}

type DaemonState = "new" | "starting" | "running" | "stopping" | "stopped";

/** Every part of a running daemon. */
interface Parts {
  registry: ModelRegistry;
  engine: LocalEngine;
  resources: ResourceProbe;
  hashes: ModelHashes;
  speeds: SpeedScores | undefined;
  fabric: PeerFabric;
  publisher: LocalStatePublisher;
  sharing: ModelSharing;
  rpc: RpcService;
  split: SplitEngine;
  router: RoutingEngine;
  jobs: JobCoordinator;
  responses: ResponseStore;
  http: HttpApi;
}

interface Step {
  name: string;
  run: () => Promise<unknown> | void;
}

export class Daemon {
  readonly #options: DaemonOptions;
  readonly #logger: Logger;
  #state: DaemonState = "new";
  #parts: Parts | undefined;
  /** Settles when #startParts() does, whatever the outcome; stop() waits on it. */
  #partsStarted: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  #address: DaemonAddress | undefined;

  constructor(options: DaemonOptions) {
    this.#options = options;
    this.#logger = options.logger.child({ component: "daemon" });
  }

  get address(): DaemonAddress | undefined {
    return this.#address;
  }

  /** Host-side RPC tunnels to peers, for split placements (undefined before start). */
  get rpcTunnels(): RpcTunnels | undefined {
    return this.#parts?.rpc.tunnels;
  }

  /** The rpc-server workers this node runs for hosts, and their tensor cache (status, tests). */
  get rpcService(): RpcService | undefined {
    return this.#parts?.rpc;
  }

  start(): Promise<DaemonAddress> {
    if (this.#state !== "new") throw errors.internal(`the daemon cannot start from state ${this.#state}`);
    this.#state = "starting";
    const parts = this.#startParts();
    this.#partsStarted = parts.then(
      () => undefined,
      () => undefined,
    );
    return parts.then(
      (address) => {
        // A stop() that arrived mid-start wins; it is waiting for this promise.
        if (this.#state === "starting") this.#state = "running";
        return address;
      },
      async (error: unknown) => {
        this.#logger.error({ err: error }, "start failed; stopping what was started");
        await this.stop();
        throw error;
      },
    );
  }

  /** Graceful shutdown; safe to call at any time and more than once. */
  stop(): Promise<void> {
    this.#stopping ??= this.#stopParts();
    return this.#stopping;
  }

  async #startParts(): Promise<DaemonAddress> {
    const { config } = this.#options;
    await makeDirectory(config.dataDir, "data_dir", 0o700);
    await makeDirectory(config.modelsDir, "models_dir", 0o755);
    // Every node has an identity, member or not, so `hearth cluster show` and the cluster view name it.
    const identity = await NodeIdentity.loadOrCreate(config.dataDir, { logger: this.#logger });
    const membership = await ClusterMembership.load(config.dataDir, { logger: this.#logger });
    const storedAliases = await AliasStore.load(config.dataDir, this.#logger);
    const parts = this.#construct(identity, membership, storedAliases, announcedProtocolVersion(this.#options.env ?? process.env));
    this.#parts = parts;

    // Start in order: what answers requests comes up only once what it relies on is running.
    parts.registry.start();
    // Stored responses are listed before the API answers, so previous_response_id finds them.
    await parts.responses.start();
    let bound: { host: string; port: number };
    try {
      bound = await parts.http.listen();
    } catch (error) {
      throw listenError(error, config.host, config.port, { what: "", portFlag: "--port", portParam: "port" });
    }
    await parts.fabric.start();
    parts.publisher.start();
    parts.rpc.start();
    // Jobs left unfinished by the last process continue; peers join them as their links come up.
    await parts.jobs.start();
    parts.http.setReady(true);
    this.#address = { host: bound.host, port: bound.port, url: `http://${formatHostPort(bound.host, bound.port)}` };

    const models = await parts.registry.list().catch((error: unknown) => {
      this.#logger.warn({ err: error }, "could not list models");
      return [];
    });
    this.#logger.info(
      {
        url: this.#address.url,
        version: this.#options.version,
        modelsDir: config.modelsDir,
        models: models.map((model) => model.id),
        auth: config.apiKey !== undefined,
        nodeId: identity.nodeId,
        cluster: membership?.clusterId ?? null,
      },
      `hearth ${this.#options.version} listening on ${this.#address.url}`,
    );
    if (models.length === 0) this.#logger.warn({ modelsDir: config.modelsDir }, "no models found; add one with: hearth pull hf:<user>/<repo>/<file>.gguf");
    return this.#address;
  }

  /** Every part, each given what it depends on. Nothing starts here. */
  #construct(identity: NodeIdentity, membership: ClusterMembership | undefined, storedAliases: AliasStore, protocolVersion: ProtocolVersion): Parts {
    const { config, version } = this.#options;
    const logger = this.#options.logger;
    const env = this.#options.env ?? process.env;
    const member = membership !== undefined;

    const registry = new ModelRegistry({ modelsDir: config.modelsDir, extraPaths: config.models.extraPaths, aliases: config.models.aliases, storedAliases, logger });
    const runnerEnv = kernelEnvironment(config.runner, logger);
    const engine = new LocalEngine({ catalog: registry, limits: config.limits, runner: config.runner, logger, ...(runnerEnv === undefined ? {} : { runnerEnv }) });
    const resources = new ResourceProbe({ logger, timeoutMs: config.peer.hardwareProbeTimeoutMs });
    // A standalone node shows cached hashes but computes none: nobody needs them, and hashing
    // gigabytes would compete with its requests.
    const hashes = new ModelHashes({ dataDir: config.dataDir, logger, compute: member });
    // Measuring speed runs a request through a loaded model; only a cluster member has anyone to tell.
    const speeds = member ? new SpeedScores({ dataDir: config.dataDir, engine, probeTokens: config.peer.speedProbeTokens, logger, hashOf: (model) => hashes.hashOf(model) }) : undefined;

    const routes = new PeerRouteTable();
    const fabric = new PeerFabric({ config, identity, membership, routes, logger, softwareVersion: version, protocolVersion });
    const publisher = new LocalStatePublisher({ config, identity, softwareVersion: version, protocolVersion, catalog: registry, engine, resources, hashes, speeds, fabric, logger });
    const views = new ClusterViews({ identity, membership, publisher, fabric, resources, hashes });
    const state = new ClusterStateSource({ views, catalog: registry });
    const layouts = new ModelLayouts({ limits: config.limits, runner: config.runner, describe: (model) => registry.description(model) });

    const sharing = new ModelSharing({ config, fabric, hashes, catalog: registry, logger, env });
    const rpc = new RpcService({ config, fabric, hashes, catalog: registry, resources, logger });
    const split = new SplitEngine({ config, localNodeId: identity.nodeId, engine, tunnels: rpc.tunnels, state, layouts, sharing, logger });
    const router = new RoutingEngine({ local: engine, split, state, layouts, hashes, links: fabric, modelProvider: sharing.fetcher, logger });
    const jobs = new JobCoordinator({
      store: new JobStore({ directory: path.join(config.dataDir, "jobs"), logger }),
      executor: router,
      config: config.jobs,
      maxEmbeddingInputs: config.limits.maxEmbeddingInputs,
      logger,
    });
    const localModels = new LocalModelAdmin({
      modelsDir: config.modelsDir,
      extraPaths: config.models.extraPaths,
      configuredAliases: config.models.aliases,
      registry,
      engine,
      aliases: storedAliases,
      refresh: () => state.fresh(),
      logger,
    });
    const responses = new ResponseStore({ directory: path.join(config.dataDir, RESPONSES_DIR_NAME), limits: config.responses, logger });
    const metrics = new Metrics({ stats: () => engine.stats() });
    const http = new HttpApi({ config, engine: router, metrics, logger, version, cluster: views, sharing, jobs, split, plans: router, localModels, responses });

    // What peers can reach on the links, in one table, fixed before the links start.
    routes.serve(router.peerRoutes).serve(sharing.peerRoutes).serve(rpc.peerRoutes).freeze();
    return { registry, engine, resources, hashes, speeds, fabric, publisher, sharing, rpc, split, router, jobs, responses, http };
  }

  /**
   * Local generations and this node's jobs running on peers drain side by side, within one
   * drain_timeout; then the split engine releases its placements' peers.
   */
  async #drain(parts: Parts): Promise<void> {
    const { drainTimeoutMs } = this.#options.config;
    const remoteDrained = parts.router.drainRemote(drainTimeoutMs);
    await parts.engine.stop({ drainTimeoutMs });
    await parts.split.stop();
    if (!(await remoteDrained)) this.#logger.warn("drain timeout reached with jobs still running on peers; they fail as the links close");
  }

  async #stopParts(): Promise<void> {
    const wasStarting = this.#state === "starting";
    this.#state = "stopping";
    // Let a start in progress finish (or fail) so every part it started gets stopped below.
    if (wasStarting) await this.#partsStarted;
    // Every step is safe on a part that never started (a failed start stops what it built).
    const parts = this.#parts;
    const steps: Step[] =
      parts === undefined
        ? []
        : [
            // 1. Load balancers and peers stop sending work; new API requests get 503.
            { name: "readiness", run: () => parts.http.setReady(false) },
            // Batch jobs pause: in-flight items are aborted, not recorded, and run again on the next start.
            { name: "jobs", run: () => parts.jobs.stop() },
            // 2. mDNS goodbye, so peers stop dialling this node.
            { name: "discovery", run: () => parts.fabric.stopDiscovery() },
            // Model transfers stop; their partial files stay for the next start to resume.
            { name: "model transfers", run: () => parts.sharing.stop() },
            // 4 + 5. Drain in-flight generations up to drain_timeout, abort the rest, stop runners.
            // This comes before the links close: jobs peers sent here must deliver their results,
            // and this node's clients' jobs running on peers need their links. New work is
            // refused meanwhile (HEARTH_SHUTTING_DOWN), which peers retry elsewhere.
            { name: "engine", run: () => this.#drain(parts) },
            // 3. Close peer links with code 1001 (HEARTH_SHUTTING_DOWN), then the peer listener.
            // Split runners were stopped in the drain, while their tunnels still stood, so no
            // recovery starts.
            { name: "peer links", run: () => parts.fabric.stopLinks() },
            // Tunnel listeners close and rpc-server workers stop (their hosts' links are gone now).
            { name: "rpc workers", run: () => parts.rpc.stop() },
            // Background work: state publishing, hashing, a speed measurement in flight, the GPU probe, the model index.
            {
              name: "background",
              run: () => {
                parts.publisher.stop();
                parts.speeds?.stop();
                parts.hashes.stop();
                parts.resources.stop();
                parts.registry.stop();
              },
            },
            // Only now close HTTP: closing earlier would cut off the streams being drained.
            { name: "http", run: () => parts.http.close() },
            // Responses answered during the drain are on disk before the process exits.
            { name: "responses", run: () => parts.responses.stop() },
          ];
    for (const step of steps) {
      const startedAt = Date.now();
      try {
        await step.run();
        this.#logger.debug({ step: step.name, ms: Date.now() - startedAt }, "shutdown step done");
      } catch (error) {
        this.#logger.error({ err: error, step: step.name }, "shutdown step failed; continuing");
      }
    }
    this.#state = "stopped";
    this.#logger.info("stopped");
  }
}

async function makeDirectory(directory: string, key: string, mode: number): Promise<void> {
  try {
    await fs.promises.mkdir(directory, { recursive: true, mode });
  } catch (error) {
    throw errors.configInvalid(`${key}: cannot create ${directory}: ${(error as Error).message}`, { param: key, cause: error });
  }
}
