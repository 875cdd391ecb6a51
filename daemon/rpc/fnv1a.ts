/**
 * 64-bit FNV-1a, exactly as llama.cpp's ggml-rpc.cpp computes it (`fnv_hash`: offset basis
 * 0xcbf29ce484222325, prime 0x100000001b3, xor then multiply, per byte), and the rules by which
 * rpc-server's `-c` cache names tensors. Checked against the bundled source (node-llama-cpp
 * 3.22.1, llama.cpp de3ff815, RPC protocol 7.0.0):
 *   - the client sends SET_TENSOR_HASH instead of the bytes when one set_tensor call is larger
 *     than HASH_THRESHOLD and the buffer holds weights. Upstream's threshold is 10 MiB; Hearth's
 *     native build (native/build.mjs) lowers it to 64 KiB in its own copy, so attention
 *     matrices of 1-8B models (4-10 MiB) are cached too;
 *   - llama.cpp's loader uploads each weight tensor to an RPC device in one call (the RPC
 *     device has no host buffer, so no chunked async upload), so the hash is over the tensor's
 *     bytes exactly as they are in the GGUF file;
 *   - the server looks for `<cache_dir>/<hash as %016 PRIx64>`: 16 lower-case hex digits.
 *
 * The 64-bit state is kept as four 16-bit limbs: multiplying by 0x100000001b3 = 2^40 + 0x1b3
 * needs only small int32 products, which V8 keeps in registers; no BigInt or float on the hot
 * path (hundreds of MB/s, where a two-halves float version managed about 30).
 * Pure: no I/O.
 */

/** HASH_THRESHOLD as native/build.mjs patches it: a weight tensor goes by hash only when strictly larger. */
export const RPC_HASH_THRESHOLD_BYTES = 64 * 1024;

/** 0xcbf29ce484222325 as 16-bit limbs, lowest first. */
const BASIS = [0x2325, 0x8422, 0x9ce4, 0xcbf2] as const;

/** Incremental FNV-1a 64: update() with the tensor's bytes in any chunking, then hex(). */
export class Fnv1a64 {
  #h0: number = BASIS[0];
  #h1: number = BASIS[1];
  #h2: number = BASIS[2];
  #h3: number = BASIS[3];

  update(bytes: Uint8Array): this {
    let h0 = this.#h0;
    let h1 = this.#h1;
    let h2 = this.#h2;
    let h3 = this.#h3;
    const length = bytes.length;
    for (let i = 0; i < length; i++) {
      h0 ^= bytes[i]!;
      // The prime is 2^40 + 0x1b3: limb 0 times 0x1b3, limb 2 times 0x100. Every partial
      // product and carry stays below 2^26, so int32 arithmetic is exact.
      const t0 = h0 * 0x1b3;
      const t1 = h1 * 0x1b3 + (t0 >>> 16);
      const t2 = h2 * 0x1b3 + (h0 << 8) + (t1 >>> 16);
      const t3 = h3 * 0x1b3 + (h1 << 8) + (t2 >>> 16);
      h0 = t0 & 0xffff;
      h1 = t1 & 0xffff;
      h2 = t2 & 0xffff;
      h3 = t3 & 0xffff;
    }
    this.#h0 = h0;
    this.#h1 = h1;
    this.#h2 = h2;
    this.#h3 = h3;
    return this;
  }

  /** The hash as rpc-server names its cache file: 16 lower-case hex digits. */
  hex(): string {
    return [this.#h3, this.#h2, this.#h1, this.#h0].map((limb) => limb.toString(16).padStart(4, "0")).join("");
  }

  bigint(): bigint {
    return BigInt(`0x${this.hex()}`);
  }
}

export function fnv1a64Hex(bytes: Uint8Array): string {
  return new Fnv1a64().update(bytes).hex();
}

/** Whether `name` is a cache entry rpc-server could look up (and not one of our temp files). */
export function isTensorCacheName(name: string): boolean {
  return /^[0-9a-f]{16}$/.test(name);
}

/** Whether a weight tensor of this size is sent by hash, and so worth a cache entry. */
export function goesByHash(byteLength: number): boolean {
  return byteLength > RPC_HASH_THRESHOLD_BYTES;
}
