/**
 * Reads a JSON request body with a hard size limit.
 *
 * The limit is checked twice: against Content-Length before anything is read, and against
 * the bytes actually received (chunked bodies, lying headers). Past the limit nothing more is
 * buffered; the caller answers 413 and the connection is closed, so the rest of the body is
 * never read into memory.
 */

import type { IncomingMessage } from "node:http";
import type { HearthError } from "../../protocol/errors.js";
import { errors } from "../../protocol/errors.js";

/** `application/json`, or any `application/<something>+json`, parameters allowed. */
export function isJsonContentType(header: string | undefined): boolean {
  if (header === undefined) return false;
  const mediaType = (header.split(";")[0] ?? "").trim().toLowerCase();
  return mediaType === "application/json" || /^application\/[a-z0-9.!#$&^_-]+\+json$/.test(mediaType);
}

function tooLarge(maxBytes: number): HearthError {
  return errors.bodyTooLarge(`The request body exceeds the limit of ${maxBytes} bytes.`);
}

/** Collects the raw body bytes, failing with HEARTH_BODY_TOO_LARGE as soon as the limit is passed. */
export function readBodyBytes(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > maxBytes) return Promise.reject(tooLarge(maxBytes));
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    const cleanup = (): void => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
    };
    const onData = (chunk: Buffer): void => {
      received += chunk.length;
      if (received > maxBytes) {
        cleanup();
        chunks.length = 0;
        // Stop pulling from the socket; the 413 answer closes the connection.
        req.pause();
        reject(tooLarge(maxBytes));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks, received));
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(errors.cancelled("The client went away while sending the request body.", { cause: error }));
    };
    const onClose = (): void => {
      if (req.complete) return;
      cleanup();
      reject(errors.cancelled("The client went away while sending the request body."));
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onClose);
  });
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Checks the content type, reads the body within `maxBytes` and parses it as a JSON object.
 * Throws HEARTH_UNSUPPORTED_MEDIA_TYPE, HEARTH_BODY_TOO_LARGE, HEARTH_INVALID_JSON, or
 * HEARTH_INVALID_REQUEST when the JSON is not an object.
 */
export async function readJsonBody(req: IncomingMessage, options: { maxBytes: number }): Promise<Record<string, unknown>> {
  const contentType = req.headers["content-type"];
  if (!isJsonContentType(contentType)) {
    throw errors.unsupportedMediaType(`The request body must be application/json (got ${contentType === undefined ? "no Content-Type" : JSON.stringify(contentType)}).`,
    );
  }
  const bytes = await readBodyBytes(req, options.maxBytes);
  return parseJsonObject(bytes);
}

export function parseJsonObject(bytes: Uint8Array): Record<string, unknown> {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw errors.invalidJson("The request body is not valid UTF-8.");
  }
  if (text.trim() === "") throw errors.invalidJson("The request body is empty; a JSON object is required.");
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    const detail = error instanceof SyntaxError ? `: ${error.message}` : "";
    throw errors.invalidJson(`The request body is not valid JSON${detail}.`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw errors.invalidRequest(`The request body must be a JSON object, got ${Array.isArray(value) ? "an array" : value === null ? "null" : typeof value}.`);
  }
  return value as Record<string, unknown>;
}
