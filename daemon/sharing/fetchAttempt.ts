/**
 * One attempt at a model transfer: a `model.fetch` stream to one holder, from one offset, its
 * bytes appended to the partial file and to the running sha256. It ends when the holder has
 * sent the whole file, or throws: a link that drops, a holder that refuses or stalls, bytes
 * that do not match the header. What to do next (resume, another holder, give up) is the
 * fetcher's decision (ModelFetcher.ts).
 */

import type { Hash } from "node:crypto";
import type { FileHandle } from "node:fs/promises";
import type { Duplex } from "node:stream";
import { errors } from "../../protocol/errors.js";
import { checkTransferHeader, TransferHeaderDecoder, type TransferHeader } from "../../protocol/peer/modelTransferWire.js";

export interface AttemptInput {
  stream: Duplex;
  sha256: string;
  /** Bytes already in the partial file (and in `hash`). */
  offset: number;
  /** The size the holder advertised, when known. */
  expectedSize: number | undefined;
  /** Opened for appending; every byte written goes to `hash` too. */
  file: FileHandle;
  hash: Hash;
  stallTimeoutMs: number;
  onHeader: (header: TransferHeader) => void;
  onBytes: (bytes: number) => void;
}

/** Resolves with the file's size once every byte up to it is in the partial file. */
export async function runFetchAttempt(input: AttemptInput): Promise<number> {
  const { stream } = input;
  const decoder = new TransferHeaderDecoder();
  let header: TransferHeader | undefined;
  let position = input.offset;
  let stall: NodeJS.Timeout | undefined;
  const armStall = (): void => {
    clearTimeout(stall);
    stall = setTimeout(() => stream.destroy(errors.peerTimeout(`no model bytes arrived for ${input.stallTimeoutMs} ms`)), input.stallTimeoutMs);
    stall.unref();
  };
  armStall();
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      armStall();
      let body: Uint8Array = chunk;
      if (header === undefined) {
        const decoded = decoder.push(chunk);
        if (decoded.kind === "needMore") continue;
        if (decoded.kind === "error") throw decoded.error;
        const mismatch = checkTransferHeader(decoded.header, { sha256: input.sha256, offset: input.offset, ...(input.expectedSize === undefined ? {} : { size: input.expectedSize }) });
        if (mismatch !== undefined) throw mismatch;
        header = decoded.header;
        input.onHeader(header);
        body = decoded.rest;
      }
      if (body.byteLength === 0) continue;
      if (position + body.byteLength > header.size) {
        throw errors.peerProtocolViolation(`the peer sent more than the ${header.size} bytes its header announced`);
      }
      await writeAll(input.file, body);
      input.hash.update(body);
      position += body.byteLength;
      input.onBytes(body.byteLength);
    }
  } finally {
    clearTimeout(stall);
    if (!stream.destroyed) stream.destroy();
  }
  if (header === undefined) throw errors.peerUnavailable("the peer closed the transfer before its header");
  if (position !== header.size) throw errors.peerUnavailable(`the peer ended the transfer at byte ${position} of ${header.size}`);
  return header.size;
}

async function writeAll(file: FileHandle, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.byteLength) {
    const { bytesWritten } = await file.write(bytes, offset, bytes.byteLength - offset);
    offset += bytesWritten;
  }
}
