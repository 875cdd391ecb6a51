/**
 * A structural pre-check of untrusted MessagePack, run before msgpackr sees the bytes.
 *
 * msgpackr's extension table is process-global: whatever options an Unpackr has, it turns
 * ext types into RegExp, Error, Set, Date, BigInt, typed arrays, shared "records" and
 * bundled strings, and it recurses once per nesting level. Rather than trust a combination
 * of options to switch all of that off, this scanner accepts only plain data and lets
 * msgpackr decode nothing else:
 *
 *   - nil, booleans, integers, floats, str, bin, arrays and maps, and nothing else
 *     (every ext type and the reserved byte 0xc1 are refused);
 *   - map keys are strings, and never "__proto__";
 *   - nesting is at most `maxDepth` containers;
 *   - every declared length fits in the bytes that remain (no huge pre-allocations);
 *   - exactly one value, with no trailing bytes.
 *
 * It walks the bytes once with an explicit stack, so hostile nesting cannot overflow the
 * call stack here either.
 *
 * Pure: no I/O.
 */

export type ScanResult = { readonly ok: true } | { readonly ok: false; readonly reason: string };

interface OpenContainer {
  /** Values still to read; a map of n pairs starts at 2n. */
  remaining: number;
  isMap: boolean;
}

const PROTO_KEY = [0x5f, 0x5f, 0x70, 0x72, 0x6f, 0x74, 0x6f, 0x5f, 0x5f]; // "__proto__"

const fail = (reason: string): ScanResult => ({ ok: false, reason });

function isProtoKey(bytes: Uint8Array, start: number, length: number): boolean {
  if (length !== PROTO_KEY.length) return false;
  for (let i = 0; i < length; i++) if (bytes[start + i] !== PROTO_KEY[i]) return false;
  return true;
}

export function scanMessagePack(bytes: Uint8Array, maxDepth: number): ScanResult {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = bytes.byteLength;
  let position = 0;
  // The root pseudo-container holds the single top-level value; it is not a nesting level.
  const stack: OpenContainer[] = [{ remaining: 1, isMap: false }];

  const readLength = (size: 1 | 2 | 4): number | undefined => {
    if (position + size > end) return undefined;
    const value = size === 1 ? view.getUint8(position) : size === 2 ? view.getUint16(position) : view.getUint32(position);
    position += size;
    return value;
  };

  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.remaining === 0) {
      stack.pop();
      continue;
    }
    const isKey = top.isMap && top.remaining % 2 === 0;
    top.remaining--;

    if (position >= end) return fail("truncated: a value is missing");
    const token = bytes[position++]!;

    let stringLength: number | undefined;
    let skip = 0;
    let containerItems: number | undefined;
    let containerIsMap = false;

    if (token <= 0x7f || token >= 0xe0) {
      // positive and negative fixint
    } else if (token <= 0x8f) {
      containerItems = token & 0x0f;
      containerIsMap = true;
    } else if (token <= 0x9f) {
      containerItems = token & 0x0f;
    } else if (token <= 0xbf) {
      stringLength = token & 0x1f;
    } else {
      switch (token) {
        case 0xc0:
        case 0xc2:
        case 0xc3:
          break;
        case 0xc4:
        case 0xc5:
        case 0xc6: {
          const length = readLength(token === 0xc4 ? 1 : token === 0xc5 ? 2 : 4);
          if (length === undefined) return fail("truncated: binary length");
          skip = length;
          break;
        }
        case 0xca:
          skip = 4;
          break;
        case 0xcb:
          skip = 8;
          break;
        case 0xcc:
        case 0xd0:
          skip = 1;
          break;
        case 0xcd:
        case 0xd1:
          skip = 2;
          break;
        case 0xce:
        case 0xd2:
          skip = 4;
          break;
        case 0xcf:
        case 0xd3:
          skip = 8;
          break;
        case 0xd9:
        case 0xda:
        case 0xdb: {
          stringLength = readLength(token === 0xd9 ? 1 : token === 0xda ? 2 : 4);
          if (stringLength === undefined) return fail("truncated: string length");
          break;
        }
        case 0xdc:
        case 0xdd:
        case 0xde:
        case 0xdf: {
          containerItems = readLength(token === 0xdc || token === 0xde ? 2 : 4);
          if (containerItems === undefined) return fail("truncated: container length");
          containerIsMap = token >= 0xde;
          break;
        }
        case 0xc1:
          return fail("reserved byte 0xc1");
        default:
          // 0xc7-0xc9 and 0xd4-0xd8: ext and fixext. Plain data never needs them.
          return fail(`MessagePack extension types are not accepted (byte 0x${token.toString(16)})`);
      }
    }

    if (isKey && stringLength === undefined) return fail("map keys must be strings");

    if (stringLength !== undefined) {
      if (stringLength > end - position) return fail("truncated: string body");
      if (isKey && isProtoKey(bytes, position, stringLength)) return fail('map key "__proto__" is not accepted');
      position += stringLength;
      continue;
    }

    if (skip > 0) {
      if (skip > end - position) return fail("truncated: value body");
      position += skip;
      continue;
    }

    if (containerItems !== undefined) {
      // The root pseudo-container is on the stack too, so the new container's depth is stack.length.
      if (stack.length > maxDepth) return fail(`nesting deeper than ${maxDepth}`);
      const values = containerIsMap ? containerItems * 2 : containerItems;
      // Every value takes at least one byte, so a larger count cannot be honest.
      if (values > end - position) return fail("truncated: container declares more values than the frame holds");
      if (values > 0) stack.push({ remaining: values, isMap: containerIsMap });
    }
  }

  if (position !== end) return fail(`${end - position} trailing byte(s) after the message`);
  return { ok: true };
}
