/**
 * What every OpenAI response object of one request shares, and the contract of a streamed
 * answer as a sequence of chunks.
 *
 * Pure: no I/O.
 */

import type { GenerationResult } from "../inference.js";

export interface ResponseMeta {
  /** `chatcmpl-…` or `cmpl-…`, the same for every chunk of one stream. */
  id: string;
  /** Seconds since the epoch. */
  created: number;
  /** The model name as the client sent it (OpenAI echoes the requested id). */
  model: string;
}

/**
 * Turns a generation's events into the JSON chunks of an SSE stream, in order. Each call
 * returns the chunks to send now (possibly none); `[DONE]` is the transport's business.
 */
export interface ChunkSequence {
  delta(text: string): object[];
  finish(result: GenerationResult): object[];
}
