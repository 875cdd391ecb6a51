/**
 * A peer's state snapshot as it arrives over its link (protocol/peer/messages.ts peerState):
 * an 8-core machine with two GPUs, a hashed model it has loaded and one not hashed yet, three
 * requests queued and one speed measured.
 */

import type { PeerStateMessage } from "../../protocol/peer/messages.js";

export function peerStateMessage(overrides: Partial<PeerStateMessage> = {}): PeerStateMessage {
  return {
    type: "peerState",
    seq: 1,
    cpuCores: 8,
    ramTotalBytes: 32e9,
    ramFreeBytes: 20e9,
    gpu: { backend: "cuda", devices: [{ name: "RTX A" }, { name: "RTX B" }], vramTotalBytes: 25, vramFreeBytes: 11 },
    modelsPresent: [{ id: "llama", sizeBytes: 1000, sha256: "ab".repeat(32) }, { id: "new", sizeBytes: 5, sha256: null }],
    modelsLoaded: [{ id: "llama" }],
    queueDepth: 3,
    speedScores: [{ modelId: "llama", tokensPerSecond: 42.5 }],
    ...overrides,
  };
}
