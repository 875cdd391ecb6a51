/**
 * RFC 4648 base32 (A-Z, 2-7) without padding, for text people copy by hand: node ids and
 * join tokens. It has no look-alike digits (0/O, 1/I/L) and survives case changes.
 *
 * Pure: no I/O.
 */

export const BASE32_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

const VALUE_OF = new Map<string, number>([...BASE32_ALPHABET].map((char, index) => [char, index]));

export function base32Encode(bytes: Uint8Array): string {
  let out = "";
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = ((buffer << 8) | byte) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      out += BASE32_ALPHABET[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32_ALPHABET[(buffer << (5 - bits)) & 31];
  return out;
}

/**
 * Decodes upper-case unpadded base32. Returns undefined for a character outside the
 * alphabet, an impossible length, or non-zero padding bits: exactly one text per byte string,
 * so a corrupted last character cannot slip through unnoticed.
 */
export function base32Decode(text: string): Uint8Array | undefined {
  const remainder = text.length % 8;
  if (remainder === 1 || remainder === 3 || remainder === 6) return undefined;
  const out = new Uint8Array(Math.floor((text.length * 5) / 8));
  let buffer = 0;
  let bits = 0;
  let index = 0;
  for (const char of text) {
    const value = VALUE_OF.get(char);
    if (value === undefined) return undefined;
    buffer = ((buffer << 5) | value) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      out[index++] = (buffer >>> (bits - 8)) & 0xff;
      bits -= 8;
    }
  }
  if ((buffer & ((1 << bits) - 1)) !== 0) return undefined;
  return out;
}
