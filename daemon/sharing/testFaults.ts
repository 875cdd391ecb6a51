/**
 * Test-only fault injection for model sharing. Inert unless its environment variable is set.
 *
 * HEARTH_TEST_CORRUPT_TRANSFER_AT=<byte offset>: a serving daemon flips every bit of the file
 * byte at that offset in each transfer that sends it (the file on disk is untouched). The
 * multi-host tests use it to prove that a fetcher detects a corrupted chunk by its sha256 and
 * never installs it. Never set it in production: every peer fetching from this node would
 * receive a corrupt file and refuse it.
 */

import { Transform, type TransformCallback } from "node:stream";
import { errors } from "../../protocol/errors.js";

export const CORRUPT_TRANSFER_ENV = "HEARTH_TEST_CORRUPT_TRANSFER_AT";

/** The offset to corrupt, or undefined when the knob is not set. A malformed value is a start-up error. */
export function corruptTransferOffset(env: NodeJS.ProcessEnv): number | undefined {
  const text = env[CORRUPT_TRANSFER_ENV];
  if (text === undefined || text === "") return undefined;
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value)) {
    throw errors.configInvalid(`${CORRUPT_TRANSFER_ENV}: expected a byte offset (an integer >= 0), got ${JSON.stringify(text.slice(0, 40))}`);
  }
  return value;
}

/** Passes file bytes that start at `startOffset` through, with the byte at `corruptAt` inverted. */
export class CorruptingTransform extends Transform {
  #position: number;

  constructor(
    startOffset: number,
    private readonly corruptAt: number,
  ) {
    super();
    this.#position = startOffset;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const start = this.#position;
    this.#position += chunk.byteLength;
    if (this.corruptAt < start || this.corruptAt >= this.#position) {
      callback(null, chunk);
      return;
    }
    const copy = Buffer.from(chunk);
    const index = this.corruptAt - start;
    copy[index] = (copy[index] ?? 0) ^ 0xff;
    callback(null, copy);
  }
}
