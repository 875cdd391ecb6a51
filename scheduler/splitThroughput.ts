/**
 * The throughput model of split planning: how long one generated token takes for a given
 * placement of layers, and so its predicted tokens per second.
 *
 * Decoding one token runs the layers one after the other, on whichever node holds each, and
 * llama.cpp's RPC client waits for each remote device before the next (the topology is a
 * star through the host, nothing is pipelined for a single stream). So per-token time adds up:
 *
 *   time = sum over stages of  weightBytesRead(stage) / weightBytesPerSecond(node)
 *        + sum over remote stages of  (rtt + hopOverhead) + (sent + received) / bandwidth
 *
 * - Compute: decoding is bound by reading weights, so a node's time for a stage is
 *   proportional to the weight bytes the stage reads per token (its layers, plus the output
 *   matrix on the last stage). A node's rate in bytes/s is its speed score (generation
 *   tokens/s running a whole model alone) times that model's decode bytes; a score measured
 *   with another model therefore transfers by size. KV reads, which grow with the context,
 *   are left out: the score is measured on a short prompt too.
 * - Network, per remote stage and token (docs/splitting.md, "What crosses the network"; measured on llama.cpp RPC 7.0.0):
 *   one blocking round trip (GET_TENSOR; the one-way SET_TENSOR and GRAPH_COMPUTE messages
 *   travel ahead of it), sent = the hidden state (n_embd * 4 bytes) plus `rpcOverheadBytes`
 *   of graph inputs and message headers, received = the hidden state, or the logits
 *   (n_vocab * 4 bytes) from the last stage.
 * - `hopOverheadMs` is what the Hearth tunnel adds per round trip (two daemons relaying the
 *   token's messages each way), on top of the measured heartbeat RTT. Measured 3.5-4.5 ms per
 *   token (split bench on the `tiny` model, hearth minus bare RPC, 2026-11-24), with each daemon
 *   sharing one core with the runner or rpc-server; less where daemons have a core to spare.
 *
 * Pure: no I/O.
 */

export interface NodeSpeed {
  /** Generation tokens/s this node reached running a model alone (its speed score). */
  tokensPerSecond: number;
  /** Weight bytes read per token by the model that score was measured with; omitted: this model. */
  measuredDecodeBytes?: number;
}

export interface ThroughputOptions {
  /** Link bandwidth assumed for a node that does not state its own (bytes/s). */
  defaultLinkBytesPerSecond: number;
  /** Bytes sent to a remote stage per token besides the hidden state. */
  rpcOverheadBytes: number;
  /** Added to each remote stage's RTT per token: the tunnel's relaying through both daemons. */
  hopOverheadMs: number;
}

export const DEFAULT_THROUGHPUT_OPTIONS: Readonly<ThroughputOptions> = {
  // Gigabit Ethernet's payload rate.
  defaultLinkBytesPerSecond: 117_000_000,
  // Measured (docs/splitting.md, "What crosses the network"): about 15 KB per token go to each device with n_embd 2048 (8 KiB of hidden state).
  rpcOverheadBytes: 7 * 1024,
  hopOverheadMs: 3.5,
};

const FLOAT32_BYTES = 4;

/** Seconds one weight byte takes on a node: 1 / (tokens/s * decode bytes per token). */
export function secondsPerWeightByte(speed: NodeSpeed, modelDecodeBytes: number): number {
  return 1 / (speed.tokensPerSecond * (speed.measuredDecodeBytes ?? modelDecodeBytes));
}

export interface HopFacts {
  rttMs: number;
  linkBytesPerSecond: number;
  embeddingLength: number;
  vocabularySize: number;
  /** The stage holding the output layer sends logits back instead of a hidden state. */
  holdsOutput: boolean;
}

/** Bytes one token moves between the host and a remote stage, both directions together. */
export function hopBytesPerToken(facts: Omit<HopFacts, "rttMs" | "linkBytesPerSecond">, options: ThroughputOptions): number {
  const sent = facts.embeddingLength * FLOAT32_BYTES + options.rpcOverheadBytes;
  const received = (facts.holdsOutput ? facts.vocabularySize : facts.embeddingLength) * FLOAT32_BYTES;
  return sent + received;
}

/** Seconds per token a remote stage adds for the network alone. */
export function hopSecondsPerToken(facts: HopFacts, options: ThroughputOptions): number {
  return (facts.rttMs + options.hopOverheadMs) / 1000 + hopBytesPerToken(facts, options) / facts.linkBytesPerSecond;
}

/** Tokens per second from seconds per token. */
export function tokensPerSecondOf(secondsPerToken: number): number {
  return secondsPerToken > 0 ? 1 / secondsPerToken : Number.POSITIVE_INFINITY;
}
