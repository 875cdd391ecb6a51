/**
 * What every API family's answer to a generation shares: the identity of one response, and a
 * streamed answer as a sequence of frames built from the internal generation's events. Each
 * family (protocol/openai, protocol/responses, protocol/anthropic, protocol/ollama) implements
 * ChunkSequence; the daemon writes the frames with that family's transport.
 *
 * Pure: no I/O.
 */

import type { GenerationDelta, GenerationResult } from "./inference.js";

export interface ResponseMeta {
  /** The response's id in its family's form (`chatcmpl-…`, `msg_…`, `resp_…`), the same for every frame of one stream. */
  id: string;
  /** Seconds since the epoch. */
  created: number;
  /** The model name as the client sent it (every family echoes the requested name). */
  model: string;
}

/** One frame of a stream: an SSE event (its name, when the family names events) or an NDJSON line. */
export interface StreamFrame {
  event?: string;
  data: object;
}

/**
 * Turns a generation's events into the frames of a stream, in order. Each call returns the
 * frames to send now (possibly none); a family's end marker (`[DONE]`) is the transport's business.
 */
export interface ChunkSequence {
  delta(delta: GenerationDelta): StreamFrame[];
  finish(result: GenerationResult): StreamFrame[];
}

/** Frames of plain objects, for families whose SSE events carry no name. */
export function unnamedFrames(data: readonly object[]): StreamFrame[] {
  return data.map((item) => ({ data: item }));
}
