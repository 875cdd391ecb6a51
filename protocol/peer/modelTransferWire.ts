/**
 * The wire format of model sharing (docs/protocol.md, "Model transfer").
 *
 * A node fetches a GGUF file from a peer over one peer-link byte stream of purpose
 * `model.fetch`. The opener's stream `meta` names the file by content, `{sha256, offset}`, never
 * by path or name; the acceptor answers with a header, then the file's bytes from `offset` to its
 * end, then closes its side:
 *
 *   header = u32 big-endian length N (1..MAX_TRANSFER_HEADER_BYTES) | N bytes of UTF-8 JSON
 *            {"sha256": "<64 hex>", "size": <file size>, "offset": <first byte sent>}
 *   body   = size - offset bytes
 *
 * The header lets the fetcher check, before it appends a byte to its partial file, that the
 * peer is sending the file and the range it asked for. The sha256 over the whole file is
 * checked by the fetcher at the end; nothing here trusts the bytes.
 *
 * Pure: no I/O.
 */

import { z } from "zod";
import type { HearthError } from "../errors.js";
import { errors } from "../errors.js";

/** The stream purpose (purposes are dotted lower-camel names: messages.ts). */
export const MODEL_FETCH_PURPOSE = "model.fetch";

/** Generous for `{"sha256":…,"size":…,"offset":…}` (≈130 bytes), small enough to never matter. */
export const MAX_TRANSFER_HEADER_BYTES = 1024;
const LENGTH_PREFIX_BYTES = 4;

export const SHA256_HEX_PATTERN = /^[0-9a-f]{64}$/;

const sha256Schema = z.string().regex(SHA256_HEX_PATTERN, "must be 64 lower-case hex characters");
const byteCount = () => z.int().min(0).max(Number.MAX_SAFE_INTEGER);

/** The opener's stream meta: which file (by content) and where to start. Unknown fields are dropped. */
export const modelFetchMetaSchema = z.object({
  sha256: sha256Schema,
  offset: byteCount(),
});
export type ModelFetchMeta = z.infer<typeof modelFetchMetaSchema>;

/** The acceptor's first bytes on the stream. */
export const transferHeaderSchema = z
  .object({
    sha256: sha256Schema,
    size: byteCount(),
    offset: byteCount(),
  })
  .refine((header) => header.offset <= header.size, { message: "offset must not exceed size", path: ["offset"] });
export type TransferHeader = z.infer<typeof transferHeaderSchema>;

export function isSha256Hex(value: unknown): value is string {
  return typeof value === "string" && SHA256_HEX_PATTERN.test(value);
}

/** Validates a peer's meta; a refusal names the field, never echoes the input. */
export function parseModelFetchMeta(meta: unknown): ModelFetchMeta {
  const parsed = modelFetchMetaSchema.safeParse(meta);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const field = typeof issue?.path[0] === "string" ? issue.path[0] : "meta";
  throw errors.invalidRequest(`invalid model.fetch request: ${field} ${issue?.message ?? "is invalid"}`, { param: field });
}

export function encodeTransferHeader(header: TransferHeader): Uint8Array {
  const checked = transferHeaderSchema.parse(header);
  const json = Buffer.from(JSON.stringify({ sha256: checked.sha256, size: checked.size, offset: checked.offset }), "utf8");
  const bytes = new Uint8Array(LENGTH_PREFIX_BYTES + json.byteLength);
  new DataView(bytes.buffer).setUint32(0, json.byteLength, false);
  bytes.set(json, LENGTH_PREFIX_BYTES);
  return bytes;
}

export type HeaderDecodeResult =
  | { kind: "needMore" }
  | { kind: "header"; header: TransferHeader; /** Body bytes that arrived with the header. */ rest: Uint8Array }
  | { kind: "error"; error: HearthError };

/**
 * Collects the header from stream chunks of any size. Once it returns `header` or `error` it
 * is done; feeding it more is a bug and returns the same error or an error.
 */
export class TransferHeaderDecoder {
  #buffered = new Uint8Array(0);
  #done = false;

  push(chunk: Uint8Array): HeaderDecodeResult {
    if (this.#done) return { kind: "error", error: errors.internal("the transfer header was already decoded") };
    const joined = new Uint8Array(this.#buffered.byteLength + chunk.byteLength);
    joined.set(this.#buffered, 0);
    joined.set(chunk, this.#buffered.byteLength);
    this.#buffered = joined;
    if (joined.byteLength < LENGTH_PREFIX_BYTES) return { kind: "needMore" };
    const length = new DataView(joined.buffer, joined.byteOffset, joined.byteLength).getUint32(0, false);
    if (length === 0 || length > MAX_TRANSFER_HEADER_BYTES) {
      return this.#fail(`the peer's transfer header declares ${length} bytes (1..${MAX_TRANSFER_HEADER_BYTES} allowed)`);
    }
    if (joined.byteLength < LENGTH_PREFIX_BYTES + length) return { kind: "needMore" };
    this.#done = true;
    const body = joined.subarray(LENGTH_PREFIX_BYTES, LENGTH_PREFIX_BYTES + length);
    const rest = joined.slice(LENGTH_PREFIX_BYTES + length);
    this.#buffered = new Uint8Array(0);
    let raw: unknown;
    try {
      raw = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
    } catch {
      return this.#fail("the peer's transfer header is not UTF-8 JSON");
    }
    const parsed = transferHeaderSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return this.#fail(`the peer's transfer header is invalid: ${issue?.path.join(".") || "header"} ${issue?.message ?? ""}`.trim());
    }
    return { kind: "header", header: parsed.data, rest };
  }

  #fail(message: string): HeaderDecodeResult {
    this.#done = true;
    this.#buffered = new Uint8Array(0);
    return { kind: "error", error: errors.peerProtocolViolation(message) };
  }
}

/** The header must describe exactly the file and range that were asked for. */
export function checkTransferHeader(header: TransferHeader, expected: { sha256: string; offset: number; size?: number }): HearthError | undefined {
  if (header.sha256 !== expected.sha256) return errors.peerProtocolViolation("the peer announced another file than the one requested");
  if (header.offset !== expected.offset) return errors.peerProtocolViolation(`the peer starts at byte ${header.offset}, not at the requested ${expected.offset}`);
  if (expected.size !== undefined && header.size !== expected.size) {
    return errors.peerProtocolViolation(`the peer's file has ${header.size} bytes; ${expected.size} were expected`);
  }
  return undefined;
}

// ---- asking a peer to fetch ------------------------------------------------------------

/**
 * Peer request: "get the model with this sha256 into your models dir" (from whichever node holds
 * it), sent by a host that wants to split a model over a peer lacking the file, so its weights
 * cross once through model sharing instead of over RPC at every load. The peer's own share
 * policy and disk check decide; the answer is its local model id.
 */
export const MODELS_FETCH_METHOD = "models.fetch";
/** Longest model name a peer may pass along (a label for logs and the installed file's name). */
export const MAX_FETCH_MODEL_NAME_LENGTH = 256;

export const modelsFetchRequestSchema = z.object({
  sha256: sha256Schema,
  modelName: z.string().min(1).max(MAX_FETCH_MODEL_NAME_LENGTH),
});
export type ModelsFetchRequest = z.infer<typeof modelsFetchRequestSchema>;

export const modelsFetchResponseSchema = z.object({ modelId: z.string().min(1).max(MAX_FETCH_MODEL_NAME_LENGTH) });
export type ModelsFetchResponse = z.infer<typeof modelsFetchResponseSchema>;

/** Validates a `models.fetch` payload from a peer; throws HEARTH_INVALID_REQUEST naming the field. */
export function parseModelsFetchRequest(payload: unknown): ModelsFetchRequest {
  const parsed = modelsFetchRequestSchema.safeParse(payload);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const field = issue?.path.join(".") || "payload";
  throw errors.invalidRequest(`invalid models.fetch request: ${field}: ${issue?.message ?? "invalid"}`, { param: field });
}
