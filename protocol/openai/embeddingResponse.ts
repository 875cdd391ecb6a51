/**
 * /v1/embeddings response bodies, including the base64 encoding.
 *
 * base64 is the bytes of each vector as little-endian float32, which is what OpenAI sends
 * and what the openai npm client (which asks for base64 by default) always decodes. The byte
 * order is fixed explicitly so a big-endian host still answers correctly.
 *
 * Pure: no I/O.
 */

import type { EmbeddingResult } from "../inference.js";
import type { EmbeddingEncoding } from "./embeddingRequest.js";

export interface EmbeddingResponseBody {
  object: "list";
  data: { object: "embedding"; index: number; embedding: number[] | string }[];
  model: string;
  usage: { prompt_tokens: number; total_tokens: number };
}

export function encodeFloat32Base64(vector: readonly number[]): string {
  const bytes = Buffer.alloc(vector.length * 4);
  for (const [index, value] of vector.entries()) bytes.writeFloatLE(value, index * 4);
  return bytes.toString("base64");
}

export function decodeFloat32Base64(encoded: string): number[] {
  const bytes = Buffer.from(encoded, "base64");
  const values: number[] = [];
  for (let offset = 0; offset + 4 <= bytes.length; offset += 4) values.push(bytes.readFloatLE(offset));
  return values;
}

export function buildEmbeddingResponse(model: string, result: EmbeddingResult, encoding: EmbeddingEncoding): EmbeddingResponseBody {
  return {
    object: "list",
    data: result.vectors.map((vector, index) => ({
      object: "embedding",
      index,
      embedding: encoding === "base64" ? encodeFloat32Base64(vector) : vector,
    })),
    model,
    usage: { prompt_tokens: result.promptTokens, total_tokens: result.promptTokens },
  };
}
