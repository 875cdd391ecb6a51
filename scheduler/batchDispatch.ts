/**
 * Batch dispatch: which node runs which item of a batch job, so that nothing is lost or run
 * twice while nodes come, go and fail.
 *
 * Items (indexes into the job's input) start split over the nodes in proportion to speed,
 * as contiguous runs in input order, so each node mostly walks its own stretch of the file.
 * A node with a free slot takes the front of its own backlog; when that is empty it steals
 * the last item of the largest backlog, so a fast node is never idle while a slow one still
 * has work queued. Every item is always in exactly one place: a node's backlog, a node's
 * in-flight set, the unassigned pool (only while no node is present) or completed.
 *
 * Pure: no timers, no I/O. The caller runs the items and reports back.
 */

export interface DispatchNode {
  nodeId: string;
  /** Relative speed (> 0); only ratios between nodes matter. */
  speed: number;
  /** Items the node runs at once (integer >= 1). */
  slots: number;
}

export interface DispatchNodeStats {
  nodeId: string;
  backlog: number;
  inFlight: number;
  completed: number;
  /** Items this node took from another node's backlog. */
  stolen: number;
}

interface NodeState {
  speed: number;
  slots: number;
  /** Items waiting for this node, front first. */
  backlog: number[];
  inFlight: Set<number>;
  completed: number;
  stolen: number;
}

function checkNode(node: DispatchNode): void {
  if (!Number.isFinite(node.speed) || node.speed <= 0) throw new RangeError(`speed of ${node.nodeId} must be a finite number > 0, got ${node.speed}`);
  if (!Number.isInteger(node.slots) || node.slots < 1) throw new RangeError(`slots of ${node.nodeId} must be an integer >= 1, got ${node.slots}`);
}

/**
 * Splits `count` items into shares proportional to `weights` that add up to `count`:
 * floors first, then the leftover items one each to the largest remainders (earlier
 * entries win ties, so the split is deterministic).
 */
export function proportionalShares(count: number, weights: readonly number[]): number[] {
  const total = weights.reduce((sum, weight) => sum + weight, 0);
  if (weights.length === 0 || total <= 0) return weights.map(() => 0);
  // Remainders as numerators over `total` stay exact for integer speeds, so equal fractions
  // really tie (10 * 4 / 6 and 10 * 1 / 6 differ in their last float bit).
  const remainders = weights.map((weight) => (count * weight) % total);
  const shares = weights.map((weight, index) => Math.round((count * weight - (remainders[index] ?? 0)) / total));
  let left = count - shares.reduce((sum, share) => sum + share, 0);
  const byRemainder = remainders.map((remainder, index) => ({ index, remainder })).sort((a, b) => b.remainder - a.remainder || a.index - b.index);
  for (const { index } of byRemainder) {
    if (left <= 0) break;
    shares[index] = (shares[index] ?? 0) + 1;
    left--;
  }
  return shares;
}

export class BatchDispatcher {
  // Insertion order is node order: proportional splits and tie-breaks follow it.
  readonly #nodes = new Map<string, NodeState>();
  readonly #completed = new Set<number>();
  readonly #total: number;
  /** Items waiting while no node is present; the next node to join takes them. */
  #unassigned: number[] = [];

  constructor(itemIndexes: readonly number[], nodes: readonly DispatchNode[]) {
    const seen = new Set<number>();
    for (const item of itemIndexes) {
      if (!Number.isInteger(item)) throw new RangeError(`item indexes must be integers, got ${item}`);
      if (seen.has(item)) throw new RangeError(`item ${item} appears twice`);
      seen.add(item);
    }
    for (const node of nodes) {
      checkNode(node);
      if (this.#nodes.has(node.nodeId)) throw new RangeError(`node ${node.nodeId} appears twice`);
      this.#nodes.set(node.nodeId, { speed: node.speed, slots: node.slots, backlog: [], inFlight: new Set(), completed: 0, stolen: 0 });
    }
    this.#total = itemIndexes.length;
    this.#distribute([...itemIndexes], "back");
  }

  /** Items not completed yet: queued, in flight or unassigned. */
  get remaining(): number {
    return this.#total - this.#completed.size;
  }

  get done(): boolean {
    return this.remaining === 0;
  }

  /** A copy of each present node's in-flight items. */
  get inFlight(): ReadonlyMap<string, ReadonlySet<number>> {
    const view = new Map<string, ReadonlySet<number>>();
    for (const [nodeId, state] of this.#nodes) view.set(nodeId, new Set(state.inFlight));
    return view;
  }

  /** Items waiting for a node to join (only non-empty while no node is present). */
  get unassigned(): readonly number[] {
    return [...this.#unassigned];
  }

  get nodeIds(): string[] {
    return [...this.#nodes.keys()];
  }

  hasNode(nodeId: string): boolean {
    return this.#nodes.has(nodeId);
  }

  /** The node's backlog, front first (empty for an unknown node). */
  backlogOf(nodeId: string): number[] {
    return [...(this.#nodes.get(nodeId)?.backlog ?? [])];
  }

  isCompleted(item: number): boolean {
    return this.#completed.has(item);
  }

  /**
   * Next item for a free slot of nodeId: own backlog first, else steals from the tail of the
   * largest backlog (earlier node first on ties). Undefined when the node is unknown, all its
   * slots are busy, or no item is waiting anywhere.
   */
  next(nodeId: string): number | undefined {
    const state = this.#nodes.get(nodeId);
    if (!state || state.inFlight.size >= state.slots) return undefined;
    let item = state.backlog.shift();
    if (item === undefined) {
      const victim = this.#largestBacklog(nodeId);
      item = victim?.backlog.pop();
      if (item !== undefined) state.stolen++;
    }
    if (item !== undefined) state.inFlight.add(item);
    return item;
  }

  /**
   * The item finished on nodeId. Returns false, changing nothing, when the item is not in
   * flight on that node: a late or duplicate report (say, from a node already removed whose
   * items were handed to others) must never count an item twice.
   */
  complete(nodeId: string, item: number): boolean {
    const state = this.#nodes.get(nodeId);
    if (!state?.inFlight.delete(item)) return false;
    this.#completed.add(item);
    state.completed++;
    return true;
  }

  /**
   * A retryable failure (node died, link dropped): the item goes back to the front of the
   * least loaded other node's backlog (expected drain time), or of its own when it is the only
   * node. Returns false, changing nothing, when the item is not in flight on that node.
   */
  requeue(nodeId: string, item: number): boolean {
    const state = this.#nodes.get(nodeId);
    if (!state?.inFlight.delete(item)) return false;
    const target = this.#leastLoaded(nodeId) ?? state;
    target.backlog.unshift(item);
    return true;
  }

  /**
   * Node gone: its in-flight items and backlog go to the front of the remaining nodes'
   * backlogs (in-flight first, split in proportion to speed), or to the unassigned pool when
   * no node remains. Returns the items that were in flight, in ascending order, so the caller
   * can abandon their runs; a late report from the removed node is then ignored.
   */
  removeNode(nodeId: string): number[] {
    const state = this.#nodes.get(nodeId);
    if (!state) return [];
    this.#nodes.delete(nodeId);
    const inFlight = [...state.inFlight].sort((a, b) => a - b);
    this.#distribute([...inFlight, ...state.backlog], "front");
    return inFlight;
  }

  /**
   * A node joins (or rejoins). It starts with the unassigned items, if any, and otherwise
   * gets work by stealing. For a node already present this updates its speed and slots.
   */
  addNode(node: DispatchNode): void {
    checkNode(node);
    const existing = this.#nodes.get(node.nodeId);
    if (existing) {
      existing.speed = node.speed;
      existing.slots = node.slots;
      return;
    }
    this.#nodes.set(node.nodeId, { speed: node.speed, slots: node.slots, backlog: this.#unassigned, inFlight: new Set(), completed: 0, stolen: 0 });
    this.#unassigned = [];
  }

  stats(): DispatchNodeStats[] {
    return [...this.#nodes].map(([nodeId, state]) => ({
      nodeId,
      backlog: state.backlog.length,
      inFlight: state.inFlight.size,
      completed: state.completed,
      stolen: state.stolen,
    }));
  }

  /** Splits items over the present nodes as contiguous runs in proportion to speed. */
  #distribute(items: number[], where: "front" | "back"): void {
    const states = [...this.#nodes.values()];
    if (states.length === 0) {
      this.#unassigned.push(...items);
      return;
    }
    const shares = proportionalShares(items.length, states.map((state) => state.speed));
    let start = 0;
    states.forEach((state, index) => {
      const share = items.slice(start, start + (shares[index] ?? 0));
      start += share.length;
      if (where === "front") state.backlog.unshift(...share);
      else state.backlog.push(...share);
    });
  }

  #largestBacklog(exceptNodeId: string): NodeState | undefined {
    let best: NodeState | undefined;
    for (const [nodeId, state] of this.#nodes) {
      if (nodeId === exceptNodeId || state.backlog.length === 0) continue;
      if (!best || state.backlog.length > best.backlog.length) best = state;
    }
    return best;
  }

  #leastLoaded(exceptNodeId: string): NodeState | undefined {
    let best: NodeState | undefined;
    let bestLoad = Infinity;
    for (const [nodeId, state] of this.#nodes) {
      if (nodeId === exceptNodeId) continue;
      const load = (state.backlog.length + state.inFlight.size + 1) / state.speed;
      if (load < bestLoad) {
        best = state;
        bestLoad = load;
      }
    }
    return best;
  }
}
