/**
 * Frames on a peer link: one WebSocket binary message holds one MessagePack-encoded
 * message from messages.ts.
 *
 * Decoding treats every byte as hostile, in this order:
 *   1. the frame size is checked before anything is parsed (1009 when too large);
 *   2. msgpackScan.ts refuses anything but plain data, deep nesting and lying lengths;
 *   3. msgpackr decodes with records, structured clone and 64-bit BigInts off, inside try/catch;
 *   4. the result is validated against the catalogue, then against the configured limits.
 * `decodeFrame` never throws: it returns either the message or a PeerProtocolError whose
 * `closeCode` the link closes with.
 *
 * Encoding validates too, so this node never sends a frame its peer would have to refuse.
 *
 * Pure: no I/O.
 */

import { Packr, Unpackr } from "msgpackr";
import { peerMessageSchema, protocolVersionSchema } from "./messages.js";
import type { PeerMessage } from "./messages.js";
import { scanMessagePack } from "./msgpackScan.js";
import { PeerProtocolError } from "./peerError.js";
import { negotiate, PROTOCOL_VERSION } from "./version.js";
import { z } from "zod";

/** Local limits on frames; the daemon passes its configured values (docs/protocol.md, "Frame limits"). */
export interface PeerFrameLimits {
  /** Largest frame accepted, in bytes. The ws server's `maxPayload` must be set to this too. */
  maxFrameBytes: number;
  /** Largest `streamData` chunk accepted, in bytes. */
  maxStreamChunkBytes: number;
  /** Deepest nesting of arrays and maps accepted in a frame. */
  maxNestingDepth: number;
}

export const DEFAULT_PEER_FRAME_LIMITS: Readonly<PeerFrameLimits> = Object.freeze({
  maxFrameBytes: 1024 * 1024,
  maxStreamChunkBytes: 256 * 1024,
  maxNestingDepth: 32,
});

export type DecodeResult = { readonly ok: true; readonly message: PeerMessage } | { readonly ok: false; readonly error: PeerProtocolError };

// Objects are written as plain maps (no records), absent optionals are dropped instead of
// becoming ext-0 "undefined", and Uint8Arrays become bin: exactly what the scanner accepts.
// (skipValues is a msgpackr 2.x option its typings lack; a non-literal object passes it through.)
const packrOptions = { useRecords: false, structuredClone: false, moreTypes: false, skipValues: [undefined] };
const packr = new Packr(packrOptions);

// int64AsType "number": an int64 is never a BigInt; values beyond 2^53 then fail the schema's
// safe-integer bounds. copyBuffers: decoded bytes never alias the caller's frame buffer.
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, structuredClone: false, int64AsType: "number", copyBuffers: true });

const invalid = (message: string): DecodeResult => ({ ok: false, error: new PeerProtocolError("HEARTH_PEER_FRAME_INVALID", message) });

/** Only the parts of a hello that every protocol major keeps, to recognise a peer we cannot talk to. */
const helloVersionProbe = z.object({ type: z.literal("hello"), protocol: protocolVersionSchema });

function describeIssue(issue: z.core.$ZodIssue): string {
  // Paths come from our own schema, but keys of unknown maps could be peer-chosen: quote and cut them.
  const path = issue.path.map((segment) => (typeof segment === "number" ? `[${segment}]` : `.${JSON.stringify(String(segment)).slice(0, 40)}`)).join("");
  return `${path === "" ? "message" : `message${path}`}: ${issue.message.slice(0, 200)}`;
}

export function decodeFrame(frame: Uint8Array, limits: Readonly<PeerFrameLimits> = DEFAULT_PEER_FRAME_LIMITS): DecodeResult {
  try {
    if (!(frame instanceof Uint8Array)) return invalid("a frame must be binary");
    // A plain view: msgpackr copies bin fields with the input's species (Buffer for a Buffer),
    // and caches a DataView on the object it is given; neither should leak to the caller.
    frame = new Uint8Array(frame.buffer, frame.byteOffset, frame.byteLength);
    if (frame.byteLength > limits.maxFrameBytes) {
      return { ok: false, error: new PeerProtocolError("HEARTH_PEER_FRAME_TOO_LARGE", `frame of ${frame.byteLength} bytes exceeds the limit of ${limits.maxFrameBytes}`) };
    }
    if (frame.byteLength === 0) return invalid("empty frame");

    const scan = scanMessagePack(frame, limits.maxNestingDepth);
    if (!scan.ok) return invalid(`not plain MessagePack: ${scan.reason}`);

    let decoded: unknown;
    try {
      decoded = unpackr.unpack(frame);
    } catch (error) {
      return invalid(`undecodable MessagePack: ${error instanceof Error ? error.message.slice(0, 200) : "unknown error"}`);
    }

    const parsed = peerMessageSchema.safeParse(decoded);
    if (!parsed.success) {
      const probe = helloVersionProbe.safeParse(decoded);
      if (probe.success) {
        const negotiation = negotiate(PROTOCOL_VERSION, probe.data.protocol);
        // A future major may reshape hello; say "incompatible", not "garbage".
        if (!negotiation.compatible) return { ok: false, error: new PeerProtocolError("HEARTH_PEER_INCOMPATIBLE", negotiation.reason) };
      }
      const first = parsed.error.issues[0];
      return invalid(first === undefined ? "message does not match the catalogue" : describeIssue(first));
    }

    const message = parsed.data;
    if (message.type === "streamData" && message.bytes.byteLength > limits.maxStreamChunkBytes) {
      return {
        ok: false,
        error: new PeerProtocolError("HEARTH_PEER_FRAME_TOO_LARGE", `stream chunk of ${message.bytes.byteLength} bytes exceeds the limit of ${limits.maxStreamChunkBytes}`),
      };
    }
    return { ok: true, message };
  } catch (error) {
    // Defence in depth: nothing above should throw, but a decoder must not take the link handler down.
    return invalid(`frame rejected: ${error instanceof Error ? error.message.slice(0, 200) : "unknown error"}`);
  }
}

/**
 * Why a free-form value (a request payload, stream meta) is not plain data, or undefined if
 * it is. msgpackr would otherwise quietly turn a Set into an array, a RegExp into a pair of
 * strings and a BigInt into a number; a local bug should fail here, not surprise the peer.
 */
function plainDataProblem(value: unknown, depthLeft: number): string | undefined {
  if (value === null || value === undefined) return undefined;
  switch (typeof value) {
    case "string":
    case "boolean":
    case "number":
      return undefined;
    case "object":
      break;
    default:
      return `a ${typeof value} is not plain data`;
  }
  if (value instanceof Uint8Array) return value.constructor === Uint8Array || Buffer.isBuffer(value) ? undefined : `a ${value.constructor.name} is not plain data`;
  if (depthLeft <= 0) return "nested too deeply";
  if (Array.isArray(value)) {
    for (const item of value as unknown[]) {
      if (item === undefined) return "an array holds undefined";
      const problem = plainDataProblem(item, depthLeft - 1);
      if (problem !== undefined) return problem;
    }
    return undefined;
  }
  const prototype: unknown = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) {
    const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
    return `a ${typeof name === "string" ? name : "class instance"} is not plain data`;
  }
  for (const item of Object.values(value)) {
    const problem = plainDataProblem(item, depthLeft - 1);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

/**
 * Encodes a message for the wire. Throws PeerProtocolError only for a local bug: a message
 * that does not match the catalogue, or one larger than the peer would accept.
 */
export function encodeFrame(message: PeerMessage, limits: Readonly<PeerFrameLimits> = DEFAULT_PEER_FRAME_LIMITS): Uint8Array {
  const parsed = peerMessageSchema.safeParse(message);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new PeerProtocolError("HEARTH_PEER_FRAME_INVALID", `refusing to send an invalid ${String(message.type)} message: ${first === undefined ? "invalid" : describeIssue(first)}`);
  }
  if (parsed.data.type === "streamData" && parsed.data.bytes.byteLength > limits.maxStreamChunkBytes) {
    throw new PeerProtocolError("HEARTH_PEER_FRAME_TOO_LARGE", `stream chunk of ${parsed.data.bytes.byteLength} bytes exceeds the limit of ${limits.maxStreamChunkBytes}`);
  }
  const freeForm = parsed.data.type === "request" || parsed.data.type === "response" ? parsed.data.payload : parsed.data.type === "streamOpen" ? parsed.data.meta : undefined;
  const problem = plainDataProblem(freeForm, limits.maxNestingDepth);
  if (problem !== undefined) throw new PeerProtocolError("HEARTH_PEER_FRAME_INVALID", `refusing to send ${message.type}: ${problem}`);
  let frame: Uint8Array;
  try {
    frame = packr.pack(parsed.data);
  } catch (error) {
    throw new PeerProtocolError("HEARTH_PEER_FRAME_INVALID", `cannot encode ${message.type}: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (frame.byteLength > limits.maxFrameBytes) {
    throw new PeerProtocolError("HEARTH_PEER_FRAME_TOO_LARGE", `${message.type} frame of ${frame.byteLength} bytes exceeds the limit of ${limits.maxFrameBytes}`);
  }
  // Free-form payloads (request payloads, stream meta) pass the schema as `unknown`; a Date,
  // Map or BigInt in them would become an extension the peer refuses, so check our own bytes.
  const scan = scanMessagePack(frame, limits.maxNestingDepth);
  if (!scan.ok) throw new PeerProtocolError("HEARTH_PEER_FRAME_INVALID", `refusing to send ${message.type}: ${scan.reason}`);
  return frame;
}
