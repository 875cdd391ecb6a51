import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BatchDispatcher, proportionalShares, type DispatchNode } from "../../scheduler/batchDispatch.js";

const range = (count: number, from = 0): number[] => Array.from({ length: count }, (_, index) => from + index);

const node = (nodeId: string, speed = 1, slots = 1): DispatchNode => ({ nodeId, speed, slots });

function backlogs(dispatcher: BatchDispatcher): Record<string, number[]> {
  return Object.fromEntries(dispatcher.nodeIds.map((nodeId) => [nodeId, dispatcher.backlogOf(nodeId)]));
}

/** Takes up to `count` items for a node (its slots permitting). */
function take(dispatcher: BatchDispatcher, nodeId: string, count: number): number[] {
  const taken: number[] = [];
  for (let i = 0; i < count; i++) {
    const item = dispatcher.next(nodeId);
    if (item === undefined) break;
    taken.push(item);
  }
  return taken;
}

describe("proportionalShares", () => {
  it("splits by weight, floors first and hands leftovers to the largest remainders, earlier first on ties", () => {
    expect(proportionalShares(10, [3, 1, 1])).toEqual([6, 2, 2]);
    expect(proportionalShares(7, [1, 1, 1])).toEqual([3, 2, 2]);
    expect(proportionalShares(5, [1, 2])).toEqual([2, 3]);
    expect(proportionalShares(0, [1, 2])).toEqual([0, 0]);
    expect(proportionalShares(4, [])).toEqual([]);
    // Equal fractions tie exactly even where floating point division would not (10*4/6 vs 10*1/6).
    expect(proportionalShares(10, [1, 1, 4])).toEqual([2, 2, 6]);
  });

  it("always hands out exactly the count, and never more than one item away from the exact share", () => {
    fc.assert(
      fc.property(fc.nat(500), fc.array(fc.double({ min: 0.01, max: 100, noNaN: true }), { minLength: 1, maxLength: 5 }), (count, weights) => {
        const shares = proportionalShares(count, weights);
        expect(shares.reduce((sum, share) => sum + share, 0)).toBe(count);
        const total = weights.reduce((sum, weight) => sum + weight, 0);
        shares.forEach((share, index) => expect(Math.abs(share - (count * weights[index]!) / total)).toBeLessThan(1 + 1e-9));
      }),
    );
  });
});

describe("BatchDispatcher construction", () => {
  it("splits the items in proportion to speed as contiguous runs in input order", () => {
    const dispatcher = new BatchDispatcher(range(10), [node("a", 3), node("b", 1), node("c", 1)]);
    expect(backlogs(dispatcher)).toEqual({ a: [0, 1, 2, 3, 4, 5], b: [6, 7], c: [8, 9] });
    expect(dispatcher.remaining).toBe(10);
    expect(dispatcher.done).toBe(false);
  });

  it("keeps the caller's item order (a resumed job passes only the unfinished indexes)", () => {
    const dispatcher = new BatchDispatcher([12, 3, 40, 7, 8], [node("a"), node("b")]);
    expect(backlogs(dispatcher)).toEqual({ a: [12, 3, 40], b: [7, 8] });
  });

  it("is done at once with no items", () => {
    const dispatcher = new BatchDispatcher([], [node("a")]);
    expect(dispatcher.done).toBe(true);
    expect(dispatcher.next("a")).toBeUndefined();
  });

  it("parks the items as unassigned when there is no node yet", () => {
    const dispatcher = new BatchDispatcher(range(3), []);
    expect(dispatcher.unassigned).toEqual([0, 1, 2]);
    dispatcher.addNode(node("late"));
    expect(dispatcher.unassigned).toEqual([]);
    expect(dispatcher.backlogOf("late")).toEqual([0, 1, 2]);
  });

  it("rejects duplicate or fractional items, duplicate nodes and bad speeds or slot counts", () => {
    expect(() => new BatchDispatcher([1, 1], [node("a")])).toThrow(/twice/);
    expect(() => new BatchDispatcher([0.5], [node("a")])).toThrow(RangeError);
    expect(() => new BatchDispatcher([0], [node("a"), node("a")])).toThrow(/twice/);
    expect(() => new BatchDispatcher([0], [node("a", 0)])).toThrow(/speed/);
    expect(() => new BatchDispatcher([0], [node("a", Number.POSITIVE_INFINITY)])).toThrow(/speed/);
    expect(() => new BatchDispatcher([0], [node("a", 1, 0)])).toThrow(/slots/);
    expect(() => new BatchDispatcher([0], [node("a", 1, 1.5)])).toThrow(/slots/);
    const dispatcher = new BatchDispatcher([0], [node("a")]);
    expect(() => dispatcher.addNode(node("b", -1))).toThrow(/speed/);
  });
});

describe("BatchDispatcher handing out items", () => {
  it("hands a node the front of its own backlog, up to its slot count", () => {
    const dispatcher = new BatchDispatcher(range(6), [node("a", 1, 2), node("b", 1, 1)]);
    expect(take(dispatcher, "a", 5)).toEqual([0, 1]);
    expect(take(dispatcher, "b", 5)).toEqual([3]);
    expect(dispatcher.inFlight.get("a")).toEqual(new Set([0, 1]));
    expect(dispatcher.complete("a", 0)).toBe(true);
    expect(dispatcher.next("a")).toBe(2);
  });

  it("returns nothing for an unknown node", () => {
    const dispatcher = new BatchDispatcher(range(2), [node("a")]);
    expect(dispatcher.next("ghost")).toBeUndefined();
    expect(dispatcher.backlogOf("a")).toEqual([0, 1]);
  });

  it("an idle node steals the last item of the largest backlog", () => {
    const dispatcher = new BatchDispatcher(range(9), [node("fast", 1), node("mid", 1), node("slow", 1)]);
    // Backlogs: fast 0-2, mid 3-5, slow 6-8. fast finishes its own run while the others take one each.
    expect(take(dispatcher, "mid", 1)).toEqual([3]);
    for (const item of [0, 1, 2]) {
      expect(dispatcher.next("fast")).toBe(item);
      dispatcher.complete("fast", item);
    }
    // slow's backlog (6-8) is larger than mid's (4-5): its tail goes first.
    expect(dispatcher.next("fast")).toBe(8);
    expect(backlogs(dispatcher)).toEqual({ fast: [], mid: [4, 5], slow: [6, 7] });
    expect(dispatcher.stats().find((entry) => entry.nodeId === "fast")).toEqual({ nodeId: "fast", backlog: 0, inFlight: 1, completed: 3, stolen: 1 });
  });

  it("breaks a tie between equal backlogs by node order", () => {
    const dispatcher = new BatchDispatcher(range(4), [node("idle", 1), node("x", 1), node("y", 1)]);
    // Shares 2/1/1: idle 0-1, x [2], y [3].
    take(dispatcher, "idle", 1);
    dispatcher.complete("idle", 0);
    take(dispatcher, "idle", 1);
    dispatcher.complete("idle", 1);
    expect(dispatcher.next("idle")).toBe(2);
    expect(backlogs(dispatcher)).toEqual({ idle: [], x: [], y: [3] });
  });

  it("keeps a fast node busy while a slow one still has a backlog", () => {
    // Simulated time: fast takes 1 tick per item, slow takes 4.
    const dispatcher = new BatchDispatcher(range(20), [node("fast", 4), node("slow", 1)]);
    const busyUntil = new Map<string, { item: number; at: number }>();
    const completedBy = { fast: 0, slow: 0 };
    for (let tick = 0; !dispatcher.done; tick++) {
      for (const [nodeId, duration] of [
        ["fast", 1],
        ["slow", 4],
      ] as const) {
        const running = busyUntil.get(nodeId);
        if (running && running.at <= tick) {
          expect(dispatcher.complete(nodeId, running.item)).toBe(true);
          completedBy[nodeId]++;
          busyUntil.delete(nodeId);
        }
        if (!busyUntil.has(nodeId)) {
          const item = dispatcher.next(nodeId);
          if (item !== undefined) busyUntil.set(nodeId, { item, at: tick + duration });
          // Idle only when nothing is left to steal.
          else expect(dispatcher.nodeIds.every((id) => dispatcher.backlogOf(id).length === 0)).toBe(true);
        }
      }
      expect(tick).toBeLessThan(100);
    }
    expect(completedBy.fast + completedBy.slow).toBe(20);
    expect(completedBy.fast).toBeGreaterThanOrEqual(16);
  });
});

describe("BatchDispatcher completion", () => {
  it("ignores a duplicate completion and a completion by a node that does not hold the item", () => {
    const dispatcher = new BatchDispatcher(range(4), [node("a"), node("b")]);
    const item = dispatcher.next("a")!;
    expect(dispatcher.complete("b", item)).toBe(false);
    expect(dispatcher.complete("ghost", item)).toBe(false);
    expect(dispatcher.complete("a", item)).toBe(true);
    expect(dispatcher.complete("a", item)).toBe(false);
    expect(dispatcher.complete("a", 3)).toBe(false);
    expect(dispatcher.remaining).toBe(3);
    expect(dispatcher.isCompleted(item)).toBe(true);
    expect(dispatcher.stats().map((entry) => entry.completed)).toEqual([1, 0]);
  });

  it("is done exactly when every item completed", () => {
    const dispatcher = new BatchDispatcher([5, 6], [node("a", 1, 2)]);
    take(dispatcher, "a", 2);
    dispatcher.complete("a", 5);
    expect(dispatcher.done).toBe(false);
    dispatcher.complete("a", 6);
    expect(dispatcher.done).toBe(true);
    expect(dispatcher.remaining).toBe(0);
  });
});

describe("BatchDispatcher requeue", () => {
  it("puts a failed item at the front of the least loaded other node", () => {
    const dispatcher = new BatchDispatcher(range(10), [node("a", 1), node("b", 1), node("c", 4)]);
    // Shares 2/2/6: a [0,1], b [2,3], c [4..9].
    expect(dispatcher.next("a")).toBe(0);
    expect(dispatcher.requeue("a", 0)).toBe(true);
    // b: (2+0+1)/1 = 3, c: (6+0+1)/4 = 1.75 -> c.
    expect(dispatcher.backlogOf("c")).toEqual([0, 4, 5, 6, 7, 8, 9]);
    expect(dispatcher.inFlight.get("a")).toEqual(new Set());
    expect(dispatcher.remaining).toBe(10);
  });

  it("puts it back at the front of the same node when it is the only one", () => {
    const dispatcher = new BatchDispatcher(range(3), [node("solo")]);
    expect(dispatcher.next("solo")).toBe(0);
    dispatcher.requeue("solo", 0);
    expect(dispatcher.backlogOf("solo")).toEqual([0, 1, 2]);
    expect(dispatcher.next("solo")).toBe(0);
  });

  it("ignores a requeue of an item not in flight on that node", () => {
    const dispatcher = new BatchDispatcher(range(3), [node("a"), node("b")]);
    const item = dispatcher.next("a")!;
    expect(dispatcher.requeue("b", item)).toBe(false);
    dispatcher.complete("a", item);
    expect(dispatcher.requeue("a", item)).toBe(false);
    expect(backlogs(dispatcher)).toEqual({ a: [1], b: [2] });
    expect(dispatcher.remaining).toBe(2);
  });
});

describe("BatchDispatcher node changes", () => {
  it("removeNode returns the in-flight items and spreads them, then the backlog, over the rest by speed", () => {
    const dispatcher = new BatchDispatcher(range(12), [node("a", 1), node("dead", 1, 2), node("c", 2)]);
    // Shares 3/3/6: a [0-2], dead [3-5], c [6-11].
    expect(take(dispatcher, "dead", 2)).toEqual([3, 4]);
    expect(dispatcher.removeNode("dead")).toEqual([3, 4]);
    // [3, 4, 5] split 1:2 -> a gets [3], c gets [4, 5], at the front.
    expect(backlogs(dispatcher)).toEqual({ a: [3, 0, 1, 2], c: [4, 5, 6, 7, 8, 9, 10, 11] });
    expect(dispatcher.inFlight.has("dead")).toBe(false);
    expect(dispatcher.remaining).toBe(12);
  });

  it("ignores late reports from a removed node, so a redistributed item completes only once", () => {
    const dispatcher = new BatchDispatcher(range(2), [node("a"), node("b")]);
    const item = dispatcher.next("b")!;
    dispatcher.removeNode("b");
    expect(dispatcher.complete("b", item)).toBe(false);
    expect(dispatcher.requeue("b", item)).toBe(false);
    expect(take(dispatcher, "a", 1)).toEqual([item]);
    expect(dispatcher.complete("a", item)).toBe(true);
    expect(dispatcher.remaining).toBe(1);
  });

  it("removing an unknown node changes nothing", () => {
    const dispatcher = new BatchDispatcher(range(2), [node("a")]);
    expect(dispatcher.removeNode("ghost")).toEqual([]);
    expect(backlogs(dispatcher)).toEqual({ a: [0, 1] });
  });

  it("keeps the work of the last node as unassigned until a node joins", () => {
    const dispatcher = new BatchDispatcher(range(3), [node("only")]);
    dispatcher.next("only");
    expect(dispatcher.removeNode("only")).toEqual([0]);
    expect(dispatcher.unassigned).toEqual([0, 1, 2]);
    expect(dispatcher.next("only")).toBeUndefined();
    expect(dispatcher.remaining).toBe(3);
    dispatcher.addNode(node("fresh"));
    expect(take(dispatcher, "fresh", 1)).toEqual([0]);
  });

  it("a node that joins mid-job starts by stealing", () => {
    const dispatcher = new BatchDispatcher(range(4), [node("a")]);
    dispatcher.addNode(node("b"));
    expect(dispatcher.next("b")).toBe(3);
    expect(dispatcher.stats().find((entry) => entry.nodeId === "b")?.stolen).toBe(1);
  });

  it("addNode for a present node updates its speed and slots, keeping its work", () => {
    const dispatcher = new BatchDispatcher(range(4), [node("a", 1, 1)]);
    dispatcher.next("a");
    expect(dispatcher.next("a")).toBeUndefined();
    dispatcher.addNode(node("a", 2, 2));
    expect(dispatcher.next("a")).toBe(1);
    expect(dispatcher.inFlight.get("a")).toEqual(new Set([0, 1]));
  });

  it("a node can rejoin after removal and gets new work", () => {
    const dispatcher = new BatchDispatcher(range(4), [node("a"), node("b")]);
    dispatcher.removeNode("b");
    // b's items went to the front of a's backlog: [2, 3, 0, 1].
    dispatcher.addNode(node("b"));
    expect(dispatcher.next("b")).toBe(1);
    expect(backlogs(dispatcher)).toEqual({ a: [2, 3, 0], b: [] });
  });
});

describe("BatchDispatcher invariants under random operations", () => {
  type Operation =
    | { kind: "next"; node: number }
    | { kind: "complete"; node: number; pick: number }
    | { kind: "requeue"; node: number; pick: number }
    | { kind: "stale"; node: number; item: number; requeue: boolean }
    | { kind: "remove"; node: number }
    | { kind: "add"; node: number; speed: number; slots: number };

  const NODE_NAMES = ["n0", "n1", "n2", "n3"];
  const nodeIndex = fc.nat(NODE_NAMES.length - 1);
  const operation: fc.Arbitrary<Operation> = fc.oneof(
    { weight: 6, arbitrary: nodeIndex.map((index) => ({ kind: "next" as const, node: index })) },
    { weight: 5, arbitrary: fc.record({ node: nodeIndex, pick: fc.nat(20) }).map((op) => ({ kind: "complete" as const, ...op })) },
    { weight: 2, arbitrary: fc.record({ node: nodeIndex, pick: fc.nat(20) }).map((op) => ({ kind: "requeue" as const, ...op })) },
    { weight: 2, arbitrary: fc.record({ node: nodeIndex, item: fc.nat(40), requeue: fc.boolean() }).map((op) => ({ kind: "stale" as const, ...op })) },
    { weight: 1, arbitrary: nodeIndex.map((index) => ({ kind: "remove" as const, node: index })) },
    {
      weight: 1,
      arbitrary: fc.record({ node: nodeIndex, speed: fc.integer({ min: 1, max: 8 }), slots: fc.integer({ min: 1, max: 3 }) }).map((op) => ({ kind: "add" as const, ...op })),
    },
  );

  /** Every item is in exactly one place: some backlog, some in-flight set, unassigned, or completed. */
  function checkPartition(dispatcher: BatchDispatcher, items: readonly number[], completions: Map<number, number>): void {
    const seen: number[] = [...dispatcher.unassigned];
    for (const nodeId of dispatcher.nodeIds) seen.push(...dispatcher.backlogOf(nodeId));
    for (const set of dispatcher.inFlight.values()) seen.push(...set);
    for (const item of items) if (dispatcher.isCompleted(item)) seen.push(item);
    expect([...seen].sort((a, b) => a - b)).toEqual([...items].sort((a, b) => a - b));
    expect(dispatcher.remaining).toBe(items.length - completions.size);
    for (const count of completions.values()) expect(count).toBe(1);
  }

  it("never loses or duplicates an item, and a drain completes every item exactly once", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.nat(40), { maxLength: 30 }),
        fc.array(fc.record({ speed: fc.integer({ min: 1, max: 8 }), slots: fc.integer({ min: 1, max: 3 }) }), { maxLength: NODE_NAMES.length }),
        fc.array(operation, { maxLength: 120 }),
        (items, initialNodes, operations) => {
          const dispatcher = new BatchDispatcher(
            items,
            initialNodes.map((spec, index) => node(NODE_NAMES[index]!, spec.speed, spec.slots)),
          );
          const completions = new Map<number, number>();
          const handedOut = new Map<number, string>();
          const inFlightOf = (nodeId: string): number[] => [...(dispatcher.inFlight.get(nodeId) ?? [])].sort((a, b) => a - b);
          const complete = (nodeId: string, item: number): void => {
            const accepted = dispatcher.complete(nodeId, item);
            expect(accepted).toBe(handedOut.get(item) === nodeId);
            if (accepted) {
              completions.set(item, (completions.get(item) ?? 0) + 1);
              handedOut.delete(item);
            }
          };

          for (const op of operations) {
            const nodeId = NODE_NAMES[op.node]!;
            switch (op.kind) {
              case "next": {
                const item = dispatcher.next(nodeId);
                if (item !== undefined) {
                  // Never handed out while in flight elsewhere, never after completion.
                  expect(handedOut.has(item)).toBe(false);
                  expect(completions.has(item)).toBe(false);
                  handedOut.set(item, nodeId);
                  const inFlight = dispatcher.inFlight.get(nodeId)!;
                  expect(inFlight.has(item)).toBe(true);
                }
                break;
              }
              case "complete": {
                const held = inFlightOf(nodeId);
                if (held.length > 0) complete(nodeId, held[op.pick % held.length]!);
                break;
              }
              case "requeue": {
                const held = inFlightOf(nodeId);
                if (held.length === 0) break;
                const item = held[op.pick % held.length]!;
                expect(dispatcher.requeue(nodeId, item)).toBe(true);
                handedOut.delete(item);
                break;
              }
              case "stale": {
                // A report about an item this node does not hold right now must change nothing.
                if (handedOut.get(op.item) === nodeId) break;
                const before = dispatcher.remaining;
                if (op.requeue) expect(dispatcher.requeue(nodeId, op.item)).toBe(false);
                else complete(nodeId, op.item);
                expect(dispatcher.remaining).toBe(before);
                break;
              }
              case "remove": {
                const expected = inFlightOf(nodeId);
                expect(dispatcher.removeNode(nodeId)).toEqual(expected);
                for (const item of expected) handedOut.delete(item);
                break;
              }
              case "add":
                dispatcher.addNode(node(nodeId, op.speed, op.slots));
                break;
            }
            checkPartition(dispatcher, items, completions);
          }

          // Drain: whatever state the operations left, the present nodes (or a newcomer) finish the job.
          if (dispatcher.nodeIds.length === 0) dispatcher.addNode(node("rescuer"));
          let rounds = 0;
          while (!dispatcher.done) {
            expect(rounds++).toBeLessThan(items.length + 10);
            let progressed = false;
            for (const nodeId of dispatcher.nodeIds) {
              for (const item of inFlightOf(nodeId)) {
                complete(nodeId, item);
                progressed = true;
              }
              while (dispatcher.next(nodeId) !== undefined) progressed = true;
              for (const item of inFlightOf(nodeId)) {
                handedOut.set(item, nodeId);
              }
            }
            expect(progressed).toBe(true);
            checkPartition(dispatcher, items, completions);
          }
          expect([...completions.keys()].sort((a, b) => a - b)).toEqual([...items].sort((a, b) => a - b));
          expect([...completions.values()].every((count) => count === 1)).toBe(true);
          expect(dispatcher.stats().reduce((sum, entry) => sum + entry.backlog + entry.inFlight, 0)).toBe(0);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("completes every item exactly once when nodes fail at random during a simulated run", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 60 }),
        fc.array(fc.record({ speed: fc.integer({ min: 1, max: 5 }), slots: fc.integer({ min: 1, max: 3 }) }), { minLength: 1, maxLength: 3 }),
        fc.array(fc.nat(1000), { minLength: 200, maxLength: 200 }),
        (count, specs, dice) => {
          const nodes = specs.map((spec, index) => node(`n${index}`, spec.speed, spec.slots));
          const dispatcher = new BatchDispatcher(range(count), nodes);
          const results = new Map<number, number>();
          let roll = 0;
          const die = (): number => dice[roll++ % dice.length]!;
          for (let step = 0; !dispatcher.done; step++) {
            expect(step).toBeLessThan(10_000);
            const present = dispatcher.nodeIds;
            if (present.length === 0) {
              dispatcher.addNode(nodes[die() % nodes.length]!);
              continue;
            }
            const nodeId = present[die() % present.length]!;
            const held = [...(dispatcher.inFlight.get(nodeId) ?? [])];
            const action = die() % 20;
            if (action === 0) {
              dispatcher.removeNode(nodeId);
            } else if (action === 1) {
              const spec = nodes[die() % nodes.length]!;
              if (!dispatcher.hasNode(spec.nodeId)) dispatcher.addNode(spec);
            } else if (action < 4 && held.length > 0) {
              dispatcher.requeue(nodeId, held[die() % held.length]!);
            } else if (action < 11 && held.length > 0) {
              const item = held[die() % held.length]!;
              if (dispatcher.complete(nodeId, item)) results.set(item, (results.get(item) ?? 0) + 1);
            } else {
              dispatcher.next(nodeId);
            }
          }
          expect([...results.keys()].sort((a, b) => a - b)).toEqual(range(count));
          expect([...results.values()].every((times) => times === 1)).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });
});
