/**
 * One batch job being executed: its items spread over every node that can run the model.
 *
 * The split and the stealing are the scheduler's (scheduler/batchDispatch.ts); this class
 * runs what the dispatcher hands out, each item pinned to its node through the cluster router
 * with the router's own retry off (the dispatcher decides where a failed item goes next), and
 * reports back. Every finished item is recorded in the job store before anything else
 * happens, so a crash loses at most the items in flight, which run again on resume.
 *
 * What a failure means is read from its fault class (scheduler/retryPolicy.ts):
 * - A node failure (fault `peer` or `runner`: a lost link, a timeout, a crashed runner, a peer
 *   shutting down) re-queues the item, up to jobs.max_attempts runs; a lost node (fault `peer`)
 *   is dropped with its in-flight items aborted and handed to the others, and is not taken
 *   back for two refresh periods.
 * - A node out of capacity for now (a retryable `resource` fault: its queue is full)
 *   re-queues without counting an attempt and rests that node for its retry-after.
 * - Any other failure belongs to the item (HEARTH_CONTEXT_OVERFLOW, ...): an error line.
 * - Every jobs.refresh_interval the candidates are read again: nodes that gained the model or
 *   came up join, nodes that went away leave.
 * - cancel() aborts every in-flight item (the router carries the abort to the executing node)
 *   and ends the job with an error line HEARTH_CANCELLED for each unfinished item; stop()
 *   (daemon shutdown) aborts them too but writes nothing, so the job resumes on next start.
 */

import type { Logger } from "pino";
import type { BatchItem } from "../../protocol/batch/batchInput.js";
import { buildResponseBody, errorLine, successLine, type ItemResult } from "../../protocol/batch/batchOutput.js";
import { HearthError } from "../../protocol/errors.js";
import { BatchDispatcher, type DispatchNode } from "../../scheduler/batchDispatch.js";
import type { EmbeddingJob, EmbeddingResult, GenerationJob, GenerationResult } from "../../protocol/inference.js";
import type { GenerateOptions } from "../engine/types.js";
import type { JobsConfig } from "../config/defaults.js";
import { isNodeFailure, isNodeLoss, isTransientCapacity } from "../../scheduler/retryPolicy.js";
import type { StoredJob } from "./JobStore.js";

/** How a job item is sent to one node: pinned, and not retried by the router. */
export interface JobRoute {
  pinnedNodeId?: string;
  retry?: boolean;
}

/** A node a job spreads over: its measured speed, and whether items go to it pinned (whole) or through the decision (a split hosted there). */
export interface BatchNode {
  nodeId: string;
  speed: number | null;
  pinned: boolean;
}

/** What runs items: the cluster router (daemon/routing/RoutingEngine.ts). */
export interface JobExecutor {
  generate(job: GenerationJob, options: GenerateOptions & { route?: JobRoute }): Promise<GenerationResult>;
  embed(job: EmbeddingJob, options: { signal: AbortSignal; route?: JobRoute }): Promise<EmbeddingResult>;
  /** The nodes able to run the model now, from the placement decision (scheduler/decision.ts batchNodes). */
  batchNodes(model: string): Promise<BatchNode[]>;
}

/** Item rates are measured over this recent window, so the ETA follows the current pace. */
const RATE_WINDOW_MS = 30_000;
/** A node dropped after failing is not taken back for this many refresh periods (its link may still look up). */
const LOST_NODE_REFRESH_PERIODS = 2;
export const CANCELLED = { code: "HEARTH_CANCELLED", message: "the job was cancelled before this item ran" } as const;
/** Rest for a node whose queue was full, when it suggested no retry-after. */
const DEFAULT_QUEUE_FULL_REST_MS = 1_000;

export interface NodeProgress {
  nodeId: string;
  inFlight: number;
  /** Items this node finished in this run, per second over the recent window. */
  itemsPerSecond: number;
}

export interface RunProgress {
  nodes: NodeProgress[];
  itemsPerSecond: number;
}

export interface JobRunOptions {
  job: StoredJob;
  /** Reads the job's valid items by index (from the stored input). */
  loadItems: () => Promise<ReadonlyMap<number, BatchItem>>;
  executor: JobExecutor;
  config: JobsConfig;
  logger: Logger;
  now?: () => number;
}

type Ending = "finished" | "cancelled" | "stopped";

export class JobRun {
  readonly #job: StoredJob;
  readonly #loadItems: () => Promise<ReadonlyMap<number, BatchItem>>;
  #items: ReadonlyMap<number, BatchItem> = new Map();
  readonly #executor: JobExecutor;
  readonly #config: JobsConfig;
  readonly #log: Logger;
  readonly #now: () => number;
  #dispatcher: BatchDispatcher | undefined;
  /** In-flight runs by `${nodeId} ${index}`. */
  readonly #inFlight = new Map<string, AbortController>();
  readonly #attempts = new Map<number, number>();
  readonly #restUntil = new Map<string, number>();
  readonly #lostAt = new Map<string, number>();
  readonly #completions = new Map<string, number[]>();
  #ending: Ending | undefined;
  #runStartedAt = 0;
  #refreshTimer: NodeJS.Timeout | undefined;
  /** node id -> whether items go to it pinned, as of the last candidate read. */
  #pinned = new Map<string, boolean>();
  #wake: NodeJS.Timeout | undefined;
  #wakeTime = Infinity;
  #settle!: () => void;
  readonly #settled: Promise<void>;

  constructor(options: JobRunOptions) {
    this.#job = options.job;
    this.#loadItems = options.loadItems;
    this.#executor = options.executor;
    this.#config = options.config;
    this.#log = options.logger.child({ job: options.job.id });
    this.#now = options.now ?? Date.now;
    this.#settled = new Promise((resolve) => {
      this.#settle = resolve;
    });
  }

  get id(): string {
    return this.#job.id;
  }

  /** Runs the job to its end; resolves once its final state is written. Never rejects. */
  async run(): Promise<void> {
    this.#runStartedAt = this.#now();
    try {
      this.#items = await this.#loadItems();
      if (this.#ending !== undefined) return await this.#finish();
      await this.#job.updateMeta({ status: "running", startedAt: this.#job.meta.startedAt ?? this.#now() });
      const pending = this.#job.pendingIndexes();
      for (const index of pending) {
        // Only possible if the stored input no longer parses the same way (a config change between restarts).
        if (!this.#items.has(index)) this.#record(index, null, { code: "HEARTH_INTERNAL", message: "this item could not be read back from the stored input" });
      }
      this.#dispatcher = new BatchDispatcher(
        pending.filter((index) => this.#items.has(index)),
        await this.#candidateNodes().catch((error: unknown) => {
          this.#log.warn({ err: error }, "cannot read the cluster; waiting for the next refresh");
          return [];
        }),
      );
      this.#log.info({ items: pending.length, nodes: this.#dispatcher.nodeIds }, "job running");
      this.#refreshTimer = setInterval(() => void this.#refresh(), this.#config.refreshIntervalMs);
      this.#pump();
      await this.#settled;
    } catch (error) {
      this.#log.error({ err: error }, "job run failed; it resumes on the next start");
      this.#ending ??= "stopped";
    } finally {
      clearInterval(this.#refreshTimer);
      clearTimeout(this.#wake);
      this.#abortAll();
    }
    await this.#finish();
  }

  cancel(): Promise<void> {
    this.#end("cancelled");
    return this.#settled;
  }

  stop(): Promise<void> {
    this.#end("stopped");
    return this.#settled;
  }

  progress(): RunProgress {
    const now = this.#now();
    const counts = new Map<string, number>();
    for (const key of this.#inFlight.keys()) {
      const nodeId = key.slice(0, key.indexOf(" "));
      counts.set(nodeId, (counts.get(nodeId) ?? 0) + 1);
    }
    const nodeIds = new Set([...(this.#dispatcher?.nodeIds ?? []), ...this.#completions.keys()]);
    // Over the window, or the time since this run started if that is shorter.
    const windowMs = Math.max(1, Math.min(RATE_WINDOW_MS, now - this.#runStartedAt));
    const nodes = [...nodeIds].map((nodeId) => {
      const recent = (this.#completions.get(nodeId) ?? []).filter((at) => now - at <= RATE_WINDOW_MS).length;
      return { nodeId, inFlight: counts.get(nodeId) ?? 0, itemsPerSecond: (recent * 1000) / windowMs };
    });
    return { nodes, itemsPerSecond: nodes.reduce((sum, node) => sum + node.itemsPerSecond, 0) };
  }

  #end(ending: Ending): void {
    if (this.#ending !== undefined) return;
    this.#ending = ending;
    this.#abortAll();
    this.#settle();
  }

  #abortAll(): void {
    for (const controller of this.#inFlight.values()) controller.abort();
    this.#inFlight.clear();
  }

  async #finish(): Promise<void> {
    const ending = this.#ending ?? "finished";
    if (ending === "stopped") {
      await this.#job.flush();
      this.#log.info({ done: this.#job.doneCount, total: this.#job.meta.total }, "job paused for shutdown; it resumes on the next start");
      return;
    }
    if (ending === "cancelled") {
      for (const index of this.#job.pendingIndexes()) this.#record(index, null, CANCELLED);
    }
    await this.#job.updateMeta({ status: ending === "cancelled" ? "cancelled" : "completed", finishedAt: this.#now() });
    this.#log.info({ status: this.#job.meta.status, total: this.#job.meta.total }, "job finished");
  }

  async #candidateNodes(): Promise<DispatchNode[]> {
    const candidates = await this.#executor.batchNodes(this.#job.meta.model);
    this.#pinned = new Map(candidates.map((candidate) => [candidate.nodeId, candidate.pinned]));
    const known = candidates.map((candidate) => candidate.speed).filter((speed): speed is number => speed !== null && speed > 0);
    // An unmeasured node counts as average: it proves itself by how fast it finishes (and steals).
    const fallback = known.length > 0 ? known.reduce((sum, speed) => sum + speed, 0) / known.length : 1;
    const quarantineMs = this.#config.refreshIntervalMs * LOST_NODE_REFRESH_PERIODS;
    return candidates
      .filter((candidate) => this.#now() - (this.#lostAt.get(candidate.nodeId) ?? -Infinity) >= quarantineMs)
      .map((candidate) => ({ nodeId: candidate.nodeId, speed: candidate.speed !== null && candidate.speed > 0 ? candidate.speed : fallback, slots: this.#config.inFlightPerNode }));
  }

  async #refresh(): Promise<void> {
    const dispatcher = this.#dispatcher;
    if (dispatcher === undefined || this.#ending !== undefined) return;
    let nodes: DispatchNode[];
    try {
      nodes = await this.#candidateNodes();
    } catch (error) {
      this.#log.warn({ err: error }, "cannot read the cluster; keeping the current nodes");
      return;
    }
    if (this.#ending !== undefined) return;
    const present = new Set(nodes.map((node) => node.nodeId));
    for (const nodeId of dispatcher.nodeIds) {
      if (!present.has(nodeId)) this.#dropNode(nodeId, "no longer reachable or no longer has the model");
    }
    for (const node of nodes) {
      if (!dispatcher.hasNode(node.nodeId)) this.#log.info({ node: node.nodeId }, "node joins the job");
      dispatcher.addNode(node);
    }
    this.#pump();
  }

  #dropNode(nodeId: string, reason: string): void {
    const dispatcher = this.#dispatcher;
    if (dispatcher === undefined || !dispatcher.hasNode(nodeId)) return;
    const abandoned = dispatcher.removeNode(nodeId);
    for (const index of abandoned) {
      const key = `${nodeId} ${index}`;
      this.#inFlight.get(key)?.abort();
      this.#inFlight.delete(key);
    }
    this.#lostAt.set(nodeId, this.#now());
    this.#log.warn({ node: nodeId, requeued: abandoned.length, reason }, "node leaves the job; its items go to the others");
  }

  #pump(): void {
    const dispatcher = this.#dispatcher;
    if (dispatcher === undefined || this.#ending !== undefined) return;
    if (dispatcher.done) {
      this.#end("finished");
      return;
    }
    const now = this.#now();
    for (const nodeId of dispatcher.nodeIds) {
      const restUntil = this.#restUntil.get(nodeId) ?? 0;
      if (restUntil > now) {
        this.#wakeAt(restUntil);
        continue;
      }
      for (let index = dispatcher.next(nodeId); index !== undefined; index = dispatcher.next(nodeId)) this.#launch(nodeId, index);
    }
  }

  /** Pumps again when the earliest resting node may work again. */
  #wakeAt(at: number): void {
    if (this.#wake !== undefined && this.#wakeTime <= at) return;
    clearTimeout(this.#wake);
    this.#wakeTime = at;
    this.#wake = setTimeout(() => {
      this.#wake = undefined;
      this.#wakeTime = Infinity;
      this.#pump();
    }, Math.max(0, at - this.#now()));
  }

  #launch(nodeId: string, index: number): void {
    const item = this.#items.get(index)!;
    const controller = new AbortController();
    const key = `${nodeId} ${index}`;
    this.#inFlight.set(key, controller);
    this.#attempts.set(index, (this.#attempts.get(index) ?? 0) + 1);
    this.#execute(item, nodeId, controller.signal).then(
      (result) => this.#onResult(nodeId, item, controller, result),
      (error: unknown) => this.#onFailure(nodeId, item, controller, error),
    );
  }

  #execute(item: BatchItem, nodeId: string, signal: AbortSignal): Promise<ItemResult> {
    // A split runs on its host through the decision; whole-model nodes get their items pinned.
    const route: JobRoute = this.#pinned.get(nodeId) === false ? { retry: false } : { pinnedNodeId: nodeId, retry: false };
    const { request } = item;
    if (request.url === "/v1/embeddings") return this.#executor.embed(request.job, { signal, route });
    return this.#executor.generate(request.job, { signal, route });
  }

  /** Whether this run of the item still counts: not aborted, not handed elsewhere, job not ending. */
  #current(nodeId: string, index: number, controller: AbortController): boolean {
    const key = `${nodeId} ${index}`;
    if (this.#inFlight.get(key) !== controller) return false;
    this.#inFlight.delete(key);
    return this.#ending === undefined && !controller.signal.aborted;
  }

  #onResult(nodeId: string, item: BatchItem, controller: AbortController, result: ItemResult): void {
    if (!this.#current(nodeId, item.index, controller)) return;
    const dispatcher = this.#dispatcher!;
    if (!dispatcher.complete(nodeId, item.index)) return;
    const ranOn = result.nodeId ?? nodeId;
    try {
      this.#job.record({ index: item.index, node: ranOn, ok: true, at: this.#now(), out: successLine(item, buildResponseBody(item.request, result), ranOn) });
    } catch (error) {
      const failure = HearthError.from(error);
      this.#record(item.index, ranOn, { code: failure.code, message: failure.message });
    }
    this.#noteCompletion(nodeId);
    this.#pump();
  }

  #onFailure(nodeId: string, item: BatchItem, controller: AbortController, error: unknown): void {
    if (!this.#current(nodeId, item.index, controller)) return;
    const dispatcher = this.#dispatcher!;
    const failure = HearthError.from(error);
    const { code } = failure;
    const attempts = this.#attempts.get(item.index) ?? 1;
    if (isTransientCapacity(code)) {
      this.#attempts.set(item.index, attempts - 1);
      dispatcher.requeue(nodeId, item.index);
      const restMs = failure.retryAfterSeconds !== undefined ? failure.retryAfterSeconds * 1000 : DEFAULT_QUEUE_FULL_REST_MS;
      this.#restUntil.set(nodeId, this.#now() + restMs);
      this.#log.debug({ node: nodeId, item: item.index, restMs }, "node queue full; item re-queued");
    } else if (isNodeFailure(code)) {
      if (attempts >= this.#config.maxAttempts) {
        if (dispatcher.complete(nodeId, item.index)) {
          this.#record(item.index, nodeId, { code, message: `${failure.message} (after ${attempts} attempts)` });
          this.#noteCompletion(nodeId);
        }
      } else {
        dispatcher.requeue(nodeId, item.index);
        this.#log.info({ node: nodeId, item: item.index, code, attempts }, "node failed an item; re-queued");
      }
      if (isNodeLoss(code)) this.#dropNode(nodeId, code);
    } else if (dispatcher.complete(nodeId, item.index)) {
      this.#record(item.index, nodeId, { code, message: failure.message });
      this.#noteCompletion(nodeId);
    }
    this.#pump();
  }

  #record(index: number, nodeId: string | null, error: { code: string; message: string }): void {
    const item = this.#items.get(index);
    const line = item?.line ?? 0;
    this.#job.record({ index, node: nodeId, ok: false, at: this.#now(), out: errorLine({ customId: item?.customId ?? null, line }, error, nodeId) });
  }

  #noteCompletion(nodeId: string): void {
    const now = this.#now();
    const list = this.#completions.get(nodeId) ?? [];
    list.push(now);
    while (list.length > 0 && now - list[0]! > RATE_WINDOW_MS) list.shift();
    this.#completions.set(nodeId, list);
  }
}
