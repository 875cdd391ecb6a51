import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RequestQueue } from "../../scheduler/requestQueue.js";

interface Item {
  name: string;
}

const item = (name: string): Item => ({ name });
const names = (items: Item[]): string[] => items.map((entry) => entry.name);

describe("RequestQueue construction", () => {
  it("rejects slot counts below one and negative or fractional depths", () => {
    expect(() => new RequestQueue({ slots: 0, depth: 1 })).toThrow(RangeError);
    expect(() => new RequestQueue({ slots: 1.5, depth: 1 })).toThrow(RangeError);
    expect(() => new RequestQueue({ slots: 1, depth: -1 })).toThrow(RangeError);
    expect(() => new RequestQueue({ slots: 1, depth: 0.5 })).toThrow(RangeError);
  });

  it("reports capacity as slots plus depth and starts idle", () => {
    const queue = new RequestQueue<Item>({ slots: 4, depth: 3 });
    expect(queue.capacity).toBe(7);
    expect(queue.idle).toBe(true);
    expect([queue.running, queue.queued, queue.size]).toEqual([0, 0, 0]);
  });
});

describe("RequestQueue admission", () => {
  it("runs items while slots are free, then queues up to depth, then rejects", () => {
    const queue = new RequestQueue<Item>({ slots: 2, depth: 2 });
    const items = ["a", "b", "c", "d", "e", "f"].map(item);
    expect(items.map((entry) => queue.admit(entry))).toEqual(["running", "running", "queued", "queued", "rejected", "rejected"]);
    expect([queue.running, queue.queued, queue.size]).toEqual([2, 2, 4]);
    expect(queue.stateOf(items[4]!)).toBe("absent");
  });

  it("with depth 0 either runs or rejects, never queues", () => {
    const queue = new RequestQueue<Item>({ slots: 1, depth: 0 });
    expect(queue.admit(item("a"))).toBe("running");
    expect(queue.admit(item("b"))).toBe("rejected");
    expect(queue.queued).toBe(0);
  });

  it("leaves no trace of a rejected item", () => {
    const queue = new RequestQueue<Item>({ slots: 1, depth: 1 });
    queue.admit(item("a"));
    queue.admit(item("b"));
    const rejected = item("c");
    expect(queue.admit(rejected)).toBe("rejected");
    expect(queue.stateOf(rejected)).toBe("absent");
    expect(queue.remove(rejected)).toBe(false);
    expect(names(queue.waitingItems())).toEqual(["b"]);
  });

  it("refuses the same item twice (a caller bug)", () => {
    const queue = new RequestQueue<Item>({ slots: 1, depth: 1 });
    const a = item("a");
    const b = item("b");
    queue.admit(a);
    queue.admit(b);
    expect(() => queue.admit(a)).toThrow(/already/);
    expect(() => queue.admit(b)).toThrow(/already/);
  });

  it("compares items by identity, not by value", () => {
    const queue = new RequestQueue<Item>({ slots: 2, depth: 0 });
    expect(queue.admit(item("same"))).toBe("running");
    expect(queue.admit(item("same"))).toBe("running");
  });
});

describe("RequestQueue order and slot release", () => {
  it("promotes waiters in arrival order as slots are released", () => {
    const queue = new RequestQueue<Item>({ slots: 1, depth: 3 });
    const [a, b, c, d] = ["a", "b", "c", "d"].map(item) as [Item, Item, Item, Item];
    for (const entry of [a, b, c, d]) queue.admit(entry);
    expect(queue.positionOf(b)).toBe(0);
    expect(queue.positionOf(d)).toBe(2);
    expect(queue.positionOf(a)).toBe(-1);
    expect(queue.release(a)).toBe(b);
    expect(queue.stateOf(b)).toBe("running");
    expect(queue.release(b)).toBe(c);
    expect(queue.release(c)).toBe(d);
    expect(queue.release(d)).toBeUndefined();
    expect(queue.idle).toBe(true);
  });

  it("release without waiters just frees the slot for the next admit", () => {
    const queue = new RequestQueue<Item>({ slots: 1, depth: 0 });
    const a = item("a");
    queue.admit(a);
    expect(queue.release(a)).toBeUndefined();
    expect(queue.admit(item("b"))).toBe("running");
  });

  it("a freed slot goes to the longest waiter, not to a newcomer", () => {
    const queue = new RequestQueue<Item>({ slots: 1, depth: 1 });
    const a = item("a");
    const waiter = item("waiter");
    queue.admit(a);
    queue.admit(waiter);
    queue.release(a);
    expect(queue.stateOf(waiter)).toBe("running");
    expect(queue.admit(item("newcomer"))).toBe("queued");
  });

  it("releasing an item that is not running is a caller bug", () => {
    const queue = new RequestQueue<Item>({ slots: 1, depth: 1 });
    const a = item("a");
    const b = item("b");
    queue.admit(a);
    queue.admit(b);
    expect(() => queue.release(b)).toThrow(/not running/);
    expect(() => queue.release(item("stranger"))).toThrow(/not running/);
    queue.release(a);
    expect(() => queue.release(a)).toThrow(/not running/);
  });
});

describe("RequestQueue removal of waiting items", () => {
  it("removes a waiter from the middle and keeps the others in order", () => {
    const queue = new RequestQueue<Item>({ slots: 1, depth: 3 });
    const [a, b, c, d] = ["a", "b", "c", "d"].map(item) as [Item, Item, Item, Item];
    for (const entry of [a, b, c, d]) queue.admit(entry);
    expect(queue.remove(c)).toBe(true);
    expect(queue.stateOf(c)).toBe("absent");
    expect(names(queue.waitingItems())).toEqual(["b", "d"]);
    expect(queue.release(a)).toBe(b);
    expect(queue.release(b)).toBe(d);
  });

  it("does not remove running items (they must be released)", () => {
    const queue = new RequestQueue<Item>({ slots: 1, depth: 1 });
    const a = item("a");
    queue.admit(a);
    expect(queue.remove(a)).toBe(false);
    expect(queue.stateOf(a)).toBe("running");
  });

  it("a removed waiter frees its place in line for a newcomer", () => {
    const queue = new RequestQueue<Item>({ slots: 1, depth: 1 });
    queue.admit(item("a"));
    const b = item("b");
    queue.admit(b);
    expect(queue.admit(item("c"))).toBe("rejected");
    queue.remove(b);
    expect(queue.admit(item("c"))).toBe("queued");
  });

  it("drainWaiting empties the line in arrival order and leaves running items alone", () => {
    const queue = new RequestQueue<Item>({ slots: 2, depth: 3 });
    for (const name of ["a", "b", "c", "d", "e"]) queue.admit(item(name));
    expect(names(queue.drainWaiting())).toEqual(["c", "d", "e"]);
    expect(queue.queued).toBe(0);
    expect(names(queue.runningItems())).toEqual(["a", "b"]);
    expect(queue.drainWaiting()).toEqual([]);
  });
});

describe("RequestQueue invariants under random operations", () => {
  type Operation = { kind: "admit" } | { kind: "release"; pick: number } | { kind: "remove"; pick: number };
  const operation = fc.oneof(
    fc.constant<Operation>({ kind: "admit" }),
    fc.nat(50).map<Operation>((pick) => ({ kind: "release", pick })),
    fc.nat(50).map<Operation>((pick) => ({ kind: "remove", pick })),
  );

  it("matches a simple model: FIFO, never over slots or depth, rejects only when full", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 0, max: 4 }), fc.array(operation, { maxLength: 80 }), (slots, depth, operations) => {
        const queue = new RequestQueue<Item>({ slots, depth });
        const running: Item[] = [];
        const waiting: Item[] = [];
        let counter = 0;
        for (const op of operations) {
          if (op.kind === "admit") {
            const entry = item(`i${counter++}`);
            const expected = running.length < slots ? "running" : waiting.length < depth ? "queued" : "rejected";
            expect(queue.admit(entry)).toBe(expected);
            if (expected === "running") running.push(entry);
            if (expected === "queued") waiting.push(entry);
          } else if (op.kind === "release") {
            if (running.length === 0) continue;
            const [entry] = running.splice(op.pick % running.length, 1) as [Item];
            const promoted = waiting.shift();
            if (promoted) running.push(promoted);
            expect(queue.release(entry)).toBe(promoted);
          } else {
            if (waiting.length === 0) continue;
            const [entry] = waiting.splice(op.pick % waiting.length, 1) as [Item];
            expect(queue.remove(entry)).toBe(true);
          }
          expect(queue.running).toBe(running.length);
          expect(queue.queued).toBe(waiting.length);
          expect(queue.running).toBeLessThanOrEqual(slots);
          expect(queue.queued).toBeLessThanOrEqual(depth);
          // A free slot never coexists with waiters.
          expect(queue.queued === 0 || queue.running === slots).toBe(true);
          expect(queue.waitingItems()).toEqual(waiting);
        }
      }),
    );
  });
});
