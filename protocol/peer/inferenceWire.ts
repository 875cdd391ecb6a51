/**
 * Remote inference on a peer link: what travels on a stream of purpose "infer"
 * (docs/protocol.md, "Remote inference").
 *
 * The requesting node opens the stream, writes one `job` frame and half-closes; the executing
 * node answers with `delta` frames as tokens are generated, then exactly one `result` or
 * `error` frame, and closes. A stream reset in either direction cancels the job. The job
 * names the model by the executing node's own id plus the file's sha256, never by a path.
 *
 * Frames inside the stream are length-prefixed MessagePack: a 4-byte big-endian length, then
 * that many bytes holding one map with a `type` field. A stream is a byte pipe, so a frame may
 * arrive split over chunks or several frames in one chunk; InferFrameSplitter reassembles
 * them. Every frame is untrusted: the length is checked before anything is buffered, the
 * bytes go through the same structural scan as link frames (msgpackScan.ts: plain data only,
 * no extensions, bounded nesting), and the decoded value through a zod schema with bounded
 * fields. Nothing here throws on peer input: decoders return `{ok: false, error}` with a
 * catalogue code (HEARTH_PEER_FRAME_INVALID or HEARTH_PEER_FRAME_TOO_LARGE).
 *
 * Embedding vectors travel as little-endian float32 bytes when every value is exactly a
 * float32 (llama.cpp computes them in float32), else as float64, so they round-trip exactly
 * at a quarter of msgpack's per-number cost.
 *
 * Pure: no I/O.
 */

import { Packr, Unpackr } from "msgpackr";
import { z } from "zod";
import type { ErrorPayload, HearthError } from "../errors.js";
import { errors } from "../errors.js";
import type { ChatJob, CompletionJob, EmbeddingJob, GenerationResult, InferenceJob } from "../inference.js";
import { errorPayloadSchema, modelIdSchema } from "./messages.js";
import { scanMessagePack } from "./msgpackScan.js";

/** The stream purpose (docs/protocol.md, "Byte streams"). */
export const INFER_STREAM_PURPOSE = "infer";

/**
 * Bounds of the "infer" stream format. Like PEER_WIRE_LIMITS they are protocol, not local
 * configuration: both ends must agree, so changing one is a version change.
 */
export const INFER_WIRE_LIMITS = {
  /** Largest frame body (after the 4-byte length). Fits a 2048 × 4096 float32 embedding result (32 MiB) with room to spare. */
  maxFrameBytes: 64 * 1024 * 1024,
  /**
   * Largest job frame. A job comes from one HTTP body (4 MiB by default), so this is generous;
   * it is lower than maxFrameBytes because the executing node buffers one per open stream.
   */
  maxJobFrameBytes: 16 * 1024 * 1024,
  /** Bytes of the length prefix. */
  lengthPrefixBytes: 4,
  /** Deepest nesting of arrays and maps in a frame; tool parameter schemas nest, so more than link frames allow. */
  maxNestingDepth: 64,
  /** The name the client used for the model (an id, alias or sha256), for logs and model sharing. */
  maxModelNameLength: 1024,
  maxMessages: 100_000,
  maxTools: 1024,
  maxToolCalls: 1024,
  maxStopSequences: 16,
  maxEmbeddingInputs: 1_000_000,
  maxTokens: 1_000_000_000,
  /** top_k beyond any vocabulary llama.cpp loads. */
  maxTopK: 1_000_000,
  maxRepeatPenalty: 100,
} as const;

const SHA256_HEX_PATTERN = /^[0-9a-f]{64}$/;
const sha256Schema = z.string().regex(SHA256_HEX_PATTERN, "must be 64 lower-case hex characters");
const tokenCount = () => z.int().min(0).max(INFER_WIRE_LIMITS.maxTokens);
/** Single-line text without control characters (names, ids). */
const label = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .regex(/^[^\p{Cc}]*$/u, "must not contain control characters");
const jsonObject = z.record(z.string(), z.unknown());

// ---- jobs (mirror protocol/inference.ts) ---------------------------------------------------

const samplingSchema = z.object({
  maxTokens: z.int().min(1).max(INFER_WIRE_LIMITS.maxTokens).exactOptional(),
  temperature: z.number().min(0).max(2),
  topP: z.number().gt(0).max(1).exactOptional(),
  seed: z.int().exactOptional(),
  stop: z.array(z.string()).max(INFER_WIRE_LIMITS.maxStopSequences),
  frequencyPenalty: z.number().min(-2).max(2).exactOptional(),
  presencePenalty: z.number().min(-2).max(2).exactOptional(),
  topK: z.int().min(1).max(INFER_WIRE_LIMITS.maxTopK).exactOptional(),
  repeatPenalty: z.number().gt(0).max(INFER_WIRE_LIMITS.maxRepeatPenalty).exactOptional(),
});

const toolCallSchema = z.object({ id: z.string(), name: z.string(), arguments: z.string() });

const chatMessageSchema = z.object({
  role: z.enum(["system", "user", "assistant", "tool"]),
  content: z.string(),
  toolCalls: z.array(toolCallSchema).max(INFER_WIRE_LIMITS.maxToolCalls).exactOptional(),
  toolCallId: z.string().exactOptional(),
  reasoning: z.string().exactOptional(),
});

const toolDefinitionSchema = z.object({
  name: z.string().min(1).max(64),
  description: z.string().exactOptional(),
  parameters: jsonObject.exactOptional(),
});

const toolChoiceSchema = z.union([z.enum(["auto", "none", "required"]), z.object({ name: z.string().min(1).max(64) })]);

const responseFormatSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("text") }),
  z.object({ type: z.literal("json_object") }),
  z.object({ type: z.literal("json_schema"), name: z.string().min(1).max(64), schema: jsonObject }),
]);

const chatJobSchema = z.object({
  kind: z.literal("chat"),
  model: modelIdSchema,
  messages: z.array(chatMessageSchema).min(1).max(INFER_WIRE_LIMITS.maxMessages),
  sampling: samplingSchema,
  responseFormat: responseFormatSchema,
  tools: z.array(toolDefinitionSchema).max(INFER_WIRE_LIMITS.maxTools),
  toolChoice: toolChoiceSchema,
  // Absent from peers that predate thinking control: they let the model think.
  thinking: z.enum(["auto", "off"]).default("auto"),
  // Absent from peers that predate it: as many calls as the model makes.
  parallelToolCalls: z.boolean().exactOptional(),
});

const completionJobSchema = z.object({
  kind: z.literal("completion"),
  model: modelIdSchema,
  prompt: z.string(),
  sampling: samplingSchema,
  echo: z.boolean(),
  suffix: z.string().exactOptional(),
});

const embeddingJobSchema = z.object({
  kind: z.literal("embedding"),
  model: modelIdSchema,
  inputs: z.array(z.string().min(1)).min(1).max(INFER_WIRE_LIMITS.maxEmbeddingInputs),
});

const jobSchema = z.discriminatedUnion("kind", [chatJobSchema, completionJobSchema, embeddingJobSchema]);

/**
 * The one request frame. `job.model` is the executing node's own model id (from its published
 * state); `sha256` is the file the requester means (null when the executing node had not hashed
 * it yet), so a node whose file under that id differs does not run the wrong model.
 */
export const inferJobFrameSchema = z.object({
  type: z.literal("job"),
  sha256: sha256Schema.nullable(),
  modelName: label(INFER_WIRE_LIMITS.maxModelNameLength),
  job: jobSchema,
  /**
   * False: the requester wants only the result (a non-streamed request, a batch item), so the
   * executing node sends no delta frames. Absent means true.
   */
  deltas: z.boolean().optional(),
});

// ---- replies ----------------------------------------------------------------------------

/** A streamed piece; peers that predate reasoning send answer text without `part`. */
export const inferDeltaFrameSchema = z.object({ type: z.literal("delta"), part: z.enum(["answer", "reasoning"]).default("answer"), text: z.string().min(1) });

/**
 * A finished generation, as a runner reports it over IPC (protocol/runnerIpc.ts) and as it
 * crosses a peer link in a result frame (with `kind`): one schema for both.
 */
export const generationOutcomeSchema = z.object({
  text: z.string(),
  reasoning: z.string().default(""),
  toolCalls: z.array(toolCallSchema).max(INFER_WIRE_LIMITS.maxToolCalls),
  finishReason: z.enum(["stop", "length", "tool_calls"]),
  stopSequence: z.string().exactOptional(),
  usage: z.object({ promptTokens: tokenCount(), completionTokens: tokenCount(), reasoningTokens: tokenCount().default(0) }),
  cachedPromptTokens: tokenCount(),
  timeToFirstTokenMs: z.number().min(0).max(86_400_000).exactOptional(),
});

// `kind` first, as the frames have always been written.
const generationResultSchema = z.object({ kind: z.literal("generation"), ...generationOutcomeSchema.shape });

const vectorBytes = z.custom<Uint8Array>((value) => value instanceof Uint8Array && value.byteLength > 0, { error: "expected bytes" });

const embeddingResultSchema = z
  .object({
    kind: z.literal("embedding"),
    /** Element type of every vector: little-endian float32 or float64. */
    dtype: z.enum(["f32", "f64"]),
    vectors: z.array(vectorBytes).min(1).max(INFER_WIRE_LIMITS.maxEmbeddingInputs),
    promptTokens: tokenCount(),
  })
  .superRefine((result, ctx) => {
    const width = result.dtype === "f32" ? 4 : 8;
    const first = result.vectors[0]?.byteLength;
    for (const [index, vector] of result.vectors.entries()) {
      if (vector.byteLength % width !== 0 || vector.byteLength !== first) {
        ctx.addIssue({ code: "custom", message: `vector ${index} is not ${first ?? 0} bytes of ${result.dtype}`, path: ["vectors", index] });
        return;
      }
    }
  });

export const inferResultFrameSchema = z.object({
  type: z.literal("result"),
  result: z.discriminatedUnion("kind", [generationResultSchema, embeddingResultSchema]),
});

export const inferErrorFrameSchema = z.object({ type: z.literal("error"), error: errorPayloadSchema });

export const inferReplyFrameSchema = z.discriminatedUnion("type", [inferDeltaFrameSchema, inferResultFrameSchema, inferErrorFrameSchema]);

export type InferJobFrame = z.output<typeof inferJobFrameSchema>;
export type InferReplyFrame = z.output<typeof inferReplyFrameSchema>;
export type InferResultFrame = z.output<typeof inferResultFrameSchema>;
export type InferFrame = InferJobFrame | InferReplyFrame;
export type WireEmbeddingResult = z.output<typeof embeddingResultSchema>;

// Compile-time checks that the wire schemas accept exactly the in-process shapes.
type Assignable<T extends U, U> = T;
export type _GenerationResultMatches = Assignable<z.output<typeof generationOutcomeSchema>, GenerationResult>;
export type _ChatJobMatches = Assignable<ChatJob, z.input<typeof chatJobSchema>> & Assignable<z.output<typeof chatJobSchema>, ChatJob>;
export type _CompletionJobMatches = Assignable<CompletionJob, z.input<typeof completionJobSchema>> & Assignable<z.output<typeof completionJobSchema>, CompletionJob>;
export type _EmbeddingJobMatches = Assignable<EmbeddingJob, z.input<typeof embeddingJobSchema>> & Assignable<z.output<typeof embeddingJobSchema>, EmbeddingJob>;

// ---- conversions --------------------------------------------------------------------------

/** The result frame of a finished generation (the node id is added by the requester). */
export function generationResultFrame(result: GenerationResult): InferResultFrame {
  const wire: z.output<typeof generationResultSchema> = {
    kind: "generation",
    text: result.text,
    reasoning: result.reasoning,
    toolCalls: result.toolCalls.map((call) => ({ id: call.id, name: call.name, arguments: call.arguments })),
    finishReason: result.finishReason,
    usage: { promptTokens: result.usage.promptTokens, completionTokens: result.usage.completionTokens, reasoningTokens: result.usage.reasoningTokens },
    cachedPromptTokens: result.cachedPromptTokens,
  };
  if (result.stopSequence !== undefined) wire.stopSequence = result.stopSequence;
  if (result.timeToFirstTokenMs !== undefined) wire.timeToFirstTokenMs = Math.min(Math.max(0, result.timeToFirstTokenMs), 86_400_000);
  return { type: "result", result: wire };
}

export function generationResultOf(wire: z.output<typeof generationResultSchema>): GenerationResult {
  const result: GenerationResult = {
    text: wire.text,
    reasoning: wire.reasoning,
    toolCalls: wire.toolCalls,
    finishReason: wire.finishReason,
    usage: wire.usage,
    cachedPromptTokens: wire.cachedPromptTokens,
  };
  if (wire.stopSequence !== undefined) result.stopSequence = wire.stopSequence;
  if (wire.timeToFirstTokenMs !== undefined) result.timeToFirstTokenMs = wire.timeToFirstTokenMs;
  return result;
}

/** Packs vectors as float32 when that loses nothing, else float64. */
export function embeddingResultFrame(vectors: readonly (readonly number[])[], promptTokens: number): InferResultFrame {
  const exactInFloat32 = vectors.every((vector) => vector.every((value) => Object.is(Math.fround(value), value)));
  const dtype = exactInFloat32 ? "f32" : "f64";
  const packed = vectors.map((vector) => {
    const bytes = new Uint8Array(vector.length * (exactInFloat32 ? 4 : 8));
    const view = new DataView(bytes.buffer);
    vector.forEach((value, index) => (exactInFloat32 ? view.setFloat32(index * 4, value, true) : view.setFloat64(index * 8, value, true)));
    return bytes;
  });
  return { type: "result", result: { kind: "embedding", dtype, vectors: packed, promptTokens } };
}

export function embeddingVectorsOf(wire: WireEmbeddingResult): number[][] {
  const width = wire.dtype === "f32" ? 4 : 8;
  return wire.vectors.map((bytes) => {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const vector = new Array<number>(bytes.byteLength / width);
    for (let index = 0; index < vector.length; index++) vector[index] = width === 4 ? view.getFloat32(index * 4, true) : view.getFloat64(index * 8, true);
    return vector;
  });
}

/** The job frame for `job`, already renamed to the executing node's model id. */
export function jobFrame(job: InferenceJob, options: { sha256: string | null; modelName: string; deltas?: boolean }): InferJobFrame {
  const frame: InferJobFrame = { type: "job", sha256: options.sha256, modelName: options.modelName, job };
  if (options.deltas === false) frame.deltas = false;
  return frame;
}

export function errorFrame(error: ErrorPayload): InferReplyFrame {
  return { type: "error", error };
}

// ---- framing ---------------------------------------------------------------------------

// Same codec settings as link frames (codec.ts): plain maps, no records, absent optionals
// omitted, no BigInts, decoded bytes never alias the input.
const packr = new Packr({ useRecords: false, structuredClone: false, moreTypes: false, skipValues: [undefined] } as ConstructorParameters<typeof Packr>[0]);
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, structuredClone: false, int64AsType: "number", copyBuffers: true });

export type InferDecodeResult<T> = { ok: true; frame: T } | { ok: false; error: HearthError };

const invalid = (message: string): { ok: false; error: HearthError } => ({ ok: false, error: errors.peerFrameInvalid(message) });

function describeIssue(issue: z.core.$ZodIssue): string {
  // Keys of free-form maps are peer-chosen: quote and cut them.
  const path = issue.path.map((segment) => (typeof segment === "number" ? `[${segment}]` : `.${JSON.stringify(String(segment)).slice(0, 40)}`)).join("");
  return `infer frame${path}: ${issue.message.slice(0, 200)}`;
}

/**
 * Encodes one frame with its length prefix. Throws HearthError only for a local bug (a frame
 * that does not match the schema) or a frame too large to send (HEARTH_PEER_FRAME_TOO_LARGE:
 * the caller answers with an error frame instead).
 */
export function encodeInferFrame(frame: InferFrame, maxFrameBytes: number = frame.type === "job" ? INFER_WIRE_LIMITS.maxJobFrameBytes : INFER_WIRE_LIMITS.maxFrameBytes): Buffer {
  const schema = frame.type === "job" ? inferJobFrameSchema : inferReplyFrameSchema;
  const parsed = schema.safeParse(frame);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw errors.internal(`refusing to send an invalid ${frame.type} frame: ${first === undefined ? "invalid" : describeIssue(first)}`);
  }
  let body: Uint8Array;
  try {
    body = packr.pack(parsed.data);
  } catch (error) {
    throw errors.internal(`cannot encode a ${frame.type} frame: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (body.byteLength > maxFrameBytes) {
    throw errors.peerFrameTooLarge(`a ${frame.type} frame of ${body.byteLength} bytes exceeds the limit of ${maxFrameBytes}`);
  }
  const scan = scanMessagePack(body, INFER_WIRE_LIMITS.maxNestingDepth);
  if (!scan.ok) throw errors.internal(`refusing to send a ${frame.type} frame: ${scan.reason}`);
  const out = Buffer.allocUnsafe(INFER_WIRE_LIMITS.lengthPrefixBytes + body.byteLength);
  out.writeUInt32BE(body.byteLength, 0);
  out.set(body, INFER_WIRE_LIMITS.lengthPrefixBytes);
  return out;
}

function decodeBody<T>(body: Uint8Array, schema: z.ZodType<T>): InferDecodeResult<T> {
  try {
    if (body.byteLength === 0) return invalid("empty infer frame");
    const scan = scanMessagePack(body, INFER_WIRE_LIMITS.maxNestingDepth);
    if (!scan.ok) return invalid(`infer frame is not plain MessagePack: ${scan.reason}`);
    let decoded: unknown;
    try {
      decoded = unpackr.unpack(body);
    } catch (error) {
      return invalid(`undecodable infer frame: ${error instanceof Error ? error.message.slice(0, 200) : "unknown error"}`);
    }
    const parsed = schema.safeParse(decoded);
    if (!parsed.success) {
      const first = parsed.error.issues[0];
      return invalid(first === undefined ? "infer frame does not match the schema" : describeIssue(first));
    }
    return { ok: true, frame: parsed.data };
  } catch (error) {
    // Defence in depth: nothing above should throw on any input.
    return invalid(`infer frame rejected: ${error instanceof Error ? error.message.slice(0, 200) : "unknown error"}`);
  }
}

/** What the executing node accepts: one job frame. */
export function decodeJobFrame(body: Uint8Array): InferDecodeResult<InferJobFrame> {
  return decodeBody(body, inferJobFrameSchema);
}

/** What the requesting node accepts: delta, result or error frames. */
export function decodeReplyFrame(body: Uint8Array): InferDecodeResult<InferReplyFrame> {
  return decodeBody(body, inferReplyFrameSchema);
}

/**
 * Reassembles length-prefixed frame bodies from stream chunks of any size. A declared length
 * of 0 or above the limit is refused as soon as its 4 bytes are in, before any body byte is
 * buffered; after an error the splitter refuses everything (the stream must be reset).
 */
export class InferFrameSplitter {
  readonly #maxFrameBytes: number;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #failed: HearthError | undefined;

  constructor(maxFrameBytes: number = INFER_WIRE_LIMITS.maxFrameBytes) {
    this.#maxFrameBytes = maxFrameBytes;
  }

  /** Bytes held for a frame not complete yet. */
  get buffered(): number {
    return this.#buffered;
  }

  push(chunk: Uint8Array): { ok: true; bodies: Uint8Array[] } | { ok: false; error: HearthError } {
    if (this.#failed !== undefined) return { ok: false, error: this.#failed };
    if (chunk.byteLength > 0) {
      this.#chunks.push(chunk);
      this.#buffered += chunk.byteLength;
    }
    const bodies: Uint8Array[] = [];
    const prefix = INFER_WIRE_LIMITS.lengthPrefixBytes;
    while (this.#buffered >= prefix) {
      const head = this.#peek(prefix);
      const length = new DataView(head.buffer, head.byteOffset, prefix).getUint32(0);
      if (length === 0) return this.#fail(errors.peerFrameInvalid("empty infer frame"));
      if (length > this.#maxFrameBytes) {
        return this.#fail(errors.peerFrameTooLarge(`infer frame of ${length} bytes exceeds the limit of ${this.#maxFrameBytes}`));
      }
      if (this.#buffered < prefix + length) break;
      const frame = this.#take(prefix + length);
      bodies.push(frame.subarray(prefix));
    }
    return { ok: true, bodies };
  }

  /** Whether the input ended cleanly, between frames. */
  get idle(): boolean {
    return this.#buffered === 0 && this.#failed === undefined;
  }

  #fail(error: HearthError): { ok: false; error: HearthError } {
    this.#failed = error;
    this.#chunks = [];
    this.#buffered = 0;
    return { ok: false, error };
  }

  /** The first `count` buffered bytes, without consuming them. */
  #peek(count: number): Uint8Array {
    const first = this.#chunks[0]!;
    if (first.byteLength >= count) return first.subarray(0, count);
    return concat(this.#chunks, count);
  }

  #take(count: number): Uint8Array {
    const first = this.#chunks[0]!;
    let taken: Uint8Array;
    if (first.byteLength >= count) {
      taken = first.subarray(0, count);
    } else {
      taken = concat(this.#chunks, count);
    }
    let remaining = count;
    while (remaining > 0) {
      const head = this.#chunks[0]!;
      if (head.byteLength <= remaining) {
        this.#chunks.shift();
        remaining -= head.byteLength;
      } else {
        this.#chunks[0] = head.subarray(remaining);
        remaining = 0;
      }
    }
    this.#buffered -= count;
    return taken;
  }
}

function concat(chunks: readonly Uint8Array[], count: number): Uint8Array {
  const out = new Uint8Array(count);
  let offset = 0;
  for (const chunk of chunks) {
    if (offset >= count) break;
    const part = chunk.subarray(0, Math.min(chunk.byteLength, count - offset));
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}
