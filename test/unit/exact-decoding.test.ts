import { describe, expect, it } from "vitest";
import { exactChunkLength, reusablePrefix } from "../../scheduler/exactDecoding.js";

describe("exactChunkLength", () => {
  it("takes everything that fits in one batch, a single generated token included", () => {
    expect(exactChunkLength(1, 512)).toBe(1);
    expect(exactChunkLength(84, 512)).toBe(84);
    expect(exactChunkLength(512, 512)).toBe(512);
  });

  it("takes a full batch when more than one token would remain", () => {
    expect(exactChunkLength(1024, 512)).toBe(512);
    expect(exactChunkLength(514, 512)).toBe(512);
  });

  it("takes one token fewer when a full batch would leave a lone token behind", () => {
    expect(exactChunkLength(513, 512)).toBe(511);
    expect(exactChunkLength(513 - 511, 512)).toBe(2);
  });

  it("never leaves a lone prompt token behind, whatever the prompt and batch size", () => {
    for (const batchSize of [3, 4, 7, 64, 512]) {
      for (let pending = 2; pending <= 3 * batchSize + 2; pending++) {
        const chunks: number[] = [];
        for (let left = pending; left > 0; left -= chunks.at(-1)!) chunks.push(exactChunkLength(left, batchSize));
        expect(chunks.reduce((a, b) => a + b, 0)).toBe(pending);
        expect(Math.min(...chunks)).toBeGreaterThanOrEqual(2);
        expect(Math.max(...chunks)).toBeLessThanOrEqual(batchSize);
      }
    }
  });
});

describe("reusablePrefix", () => {
  it("always leaves the last prompt token to evaluate", () => {
    expect(reusablePrefix({ shared: 84, batched: 84, promptLength: 84 }, "throughput")).toBe(83);
  });

  it("under throughput batching keeps generated tokens the prompt repeats", () => {
    expect(reusablePrefix({ shared: 131, batched: 84, promptLength: 239 }, "throughput")).toBe(131);
  });

  it("under exact batching stops where the cached tokens were generated", () => {
    expect(reusablePrefix({ shared: 131, batched: 84, promptLength: 239 }, "exact")).toBe(84);
  });

  it("under exact batching leaves at least two prompt tokens to evaluate", () => {
    expect(reusablePrefix({ shared: 84, batched: 84, promptLength: 84 }, "exact")).toBe(82);
    expect(reusablePrefix({ shared: 2, batched: 2, promptLength: 2 }, "exact")).toBe(0);
    expect(reusablePrefix({ shared: 1, batched: 1, promptLength: 1 }, "exact")).toBe(0);
  });

  it("keeps nothing of a cache that shares nothing", () => {
    expect(reusablePrefix({ shared: 0, batched: 100, promptLength: 50 }, "exact")).toBe(0);
    expect(reusablePrefix({ shared: 0, batched: 100, promptLength: 50 }, "throughput")).toBe(0);
  });
});
