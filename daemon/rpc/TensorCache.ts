/**
 * rpc-server's tensor cache (`-c`), kept and pre-filled by the daemon.
 *
 * A host's RPC client sends a weight tensor larger than RPC_HASH_THRESHOLD_BYTES (64 KiB in Hearth's native build) as its FNV-1a hash first
 * (SET_TENSOR_HASH); rpc-server answers from `<cache>/<hash>` when that file exists, and the
 * bytes never cross the network (fnv1a.ts has the exact rules). A node that holds the same
 * GGUF as the host can therefore write those files from its own copy before the host loads:
 * `prefill(file)` reads every such tensor's byte range out of the local GGUF, hashes it and
 * stores it under its hash. The file is one this node found itself (its registry, matched by
 * sha256); nothing from the network becomes a path here.
 *
 * Entries are written to a temp name and renamed, so rpc-server never reads half a tensor.
 * The directory is bounded by `rpc.cache_max_bytes`: before writing, the least recently used
 * entries (by mtime, refreshed whenever a prefill uses an entry) of other models are removed;
 * when even that is not enough the prefill stops short and says so (the rest is pushed over
 * RPC at load). Entries rpc-server writes itself (after a pushed load) count against the same
 * bound and are pruned the same way. A per-model index (sha256 -> entries) makes a repeated
 * prefill of a model whose entries are all present a few stat calls.
 */

import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { Logger } from "pino";
import { z } from "zod";
import { readGgufHeader } from "../gguf/reader.js";
import { Fnv1a64, goesByHash, isTensorCacheName } from "./fnv1a.js";

const INDEX_FILE = "prefill-index.json";
const TEMP_PREFIX = ".tmp-";
const READ_CHUNK_BYTES = 8 * 1024 * 1024;

export interface TensorCacheInit {
  /** The directory rpc-server reads: <LLAMA_CACHE>/rpc. */
  directory: string;
  maxBytes: number;
  logger: Logger;
}

export interface PrefillResult {
  /** Tensors of the file that go by hash, and how many of them are cached now. */
  tensors: number;
  cachedTensors: number;
  cachedBytes: number;
  /** Bytes written by this call (0: the cache was already warm). */
  writtenBytes: number;
  ms: number;
}

const indexSchema = z.record(
  z.string().regex(/^[0-9a-f]{64}$/),
  z.object({ entries: z.array(z.object({ name: z.string().refine(isTensorCacheName), bytes: z.int().nonnegative() })) }),
);
type PrefillIndex = z.infer<typeof indexSchema>;

interface CacheEntry {
  name: string;
  bytes: number;
  mtimeMs: number;
}

export class TensorCache {
  readonly directory: string;
  readonly #init: TensorCacheInit;
  readonly #logger: Logger;
  /** One prefill at a time: they compete for the same disk, and for the bound. */
  #queue: Promise<unknown> = Promise.resolve();
  readonly #inFlight = new Map<string, Promise<PrefillResult>>();
  #tempsCleaned = false;

  constructor(init: TensorCacheInit) {
    this.#init = init;
    this.directory = init.directory;
    this.#logger = init.logger.child({ component: "rpc-cache" });
  }

  /** Makes every by-hash tensor of the local GGUF `modelPath` (content `sha256`) a cache entry. */
  prefill(modelPath: string, sha256: string): Promise<PrefillResult> {
    let pending = this.#inFlight.get(sha256);
    if (pending === undefined) {
      pending = this.#queue.then(() => this.#prefill(modelPath, sha256));
      this.#queue = pending.catch(() => undefined);
      this.#inFlight.set(sha256, pending);
      void pending.finally(() => this.#inFlight.delete(sha256)).catch(() => undefined);
    }
    return pending;
  }

  /** Bytes in the cache now (entries only). */
  async usage(): Promise<number> {
    return (await this.#entries()).reduce((sum, entry) => sum + entry.bytes, 0);
  }

  async #prefill(modelPath: string, sha256: string): Promise<PrefillResult> {
    const started = performance.now();
    await fs.promises.mkdir(this.directory, { recursive: true, mode: 0o700 });
    await this.#cleanTemps();
    const index = await this.#readIndex();
    const known = index[sha256];
    if (known !== undefined && (await this.#allPresent(known.entries))) {
      const now = new Date();
      await Promise.all(known.entries.map((entry) => fs.promises.utimes(path.join(this.directory, entry.name), now, now).catch(() => undefined)));
      const bytes = known.entries.reduce((sum, entry) => sum + entry.bytes, 0);
      return { tensors: known.entries.length, cachedTensors: known.entries.length, cachedBytes: bytes, writtenBytes: 0, ms: Math.round(performance.now() - started) };
    }

    const header = await readGgufHeader(modelPath);
    const tensors = header.tensors.filter((tensor) => goesByHash(tensor.byteLength));
    const wanted = tensors.reduce((sum, tensor) => sum + tensor.byteLength, 0);
    const written: { name: string; bytes: number }[] = [];
    let writtenBytes = 0;
    let room = await this.#makeRoom(wanted, new Set(known?.entries.map((entry) => entry.name) ?? []));
    const handle = await fs.promises.open(modelPath, "r");
    try {
      const buffer = Buffer.allocUnsafe(Math.min(READ_CHUNK_BYTES, Math.max(1, ...tensors.map((tensor) => tensor.byteLength))));
      for (const tensor of tensors) {
        if (tensor.byteLength > room) break;
        const entry = await this.#store(handle, header.dataOffset + tensor.offset, tensor.byteLength, buffer);
        written.push({ name: entry.name, bytes: tensor.byteLength });
        if (entry.written) {
          writtenBytes += tensor.byteLength;
          room -= tensor.byteLength;
        }
      }
    } finally {
      await handle.close();
    }
    index[sha256] = { entries: written };
    await this.#writeIndex(index);
    const cachedBytes = written.reduce((sum, entry) => sum + entry.bytes, 0);
    const result = { tensors: tensors.length, cachedTensors: written.length, cachedBytes, writtenBytes, ms: Math.round(performance.now() - started) };
    this.#logger.info({ sha256, ...result, complete: written.length === tensors.length }, "rpc tensor cache pre-filled from the local model file");
    return result;
  }

  /** Copies one tensor's bytes into the cache under their hash. */
  async #store(handle: fs.promises.FileHandle, position: number, length: number, buffer: Buffer): Promise<{ name: string; written: boolean }> {
    const hash = new Fnv1a64();
    const tempPath = path.join(this.directory, `${TEMP_PREFIX}${process.pid}-${randomBytes(6).toString("hex")}`);
    const out = await fs.promises.open(tempPath, "wx", 0o600);
    try {
      let done = 0;
      while (done < length) {
        const want = Math.min(buffer.length, length - done);
        const { bytesRead } = await handle.read(buffer, 0, want, position + done);
        if (bytesRead <= 0) throw new Error(`the model file ended inside a tensor (at byte ${position + done})`);
        const chunk = buffer.subarray(0, bytesRead);
        hash.update(chunk);
        await out.write(chunk);
        done += bytesRead;
      }
      await out.close();
      const name = hash.hex();
      const finalPath = path.join(this.directory, name);
      const existing = await fs.promises.stat(finalPath).catch(() => undefined);
      if (existing?.size === length) {
        await fs.promises.rm(tempPath, { force: true });
        const now = new Date();
        await fs.promises.utimes(finalPath, now, now).catch(() => undefined);
        return { name, written: false };
      }
      await fs.promises.rename(tempPath, finalPath);
      return { name, written: true };
    } catch (error) {
      await out.close().catch(() => undefined);
      await fs.promises.rm(tempPath, { force: true });
      throw error;
    }
  }

  /** Frees up to `wanted` bytes under the bound, oldest entries first, sparing `keep`; returns the room there is. */
  async #makeRoom(wanted: number, keep: ReadonlySet<string>): Promise<number> {
    const entries = await this.#entries();
    let used = entries.reduce((sum, entry) => sum + entry.bytes, 0);
    const max = this.#init.maxBytes;
    const evictable = entries.filter((entry) => !keep.has(entry.name)).sort((a, b) => a.mtimeMs - b.mtimeMs);
    let removed = 0;
    for (const entry of evictable) {
      if (used + wanted <= max) break;
      await fs.promises.rm(path.join(this.directory, entry.name), { force: true });
      used -= entry.bytes;
      removed += entry.bytes;
    }
    if (removed > 0) this.#logger.info({ removedBytes: removed, maxBytes: max }, "rpc tensor cache: removed least recently used entries");
    return Math.max(0, max - used);
  }

  async #entries(): Promise<CacheEntry[]> {
    let names: string[];
    try {
      names = await fs.promises.readdir(this.directory);
    } catch {
      return [];
    }
    const entries: CacheEntry[] = [];
    for (const name of names.filter(isTensorCacheName)) {
      const stat = await fs.promises.stat(path.join(this.directory, name)).catch(() => undefined);
      if (stat?.isFile()) entries.push({ name, bytes: stat.size, mtimeMs: stat.mtimeMs });
    }
    return entries;
  }

  async #allPresent(entries: readonly { name: string; bytes: number }[]): Promise<boolean> {
    for (const entry of entries) {
      const stat = await fs.promises.stat(path.join(this.directory, entry.name)).catch(() => undefined);
      if (stat?.size !== entry.bytes) return false;
    }
    return true;
  }

  async #cleanTemps(): Promise<void> {
    if (this.#tempsCleaned) return;
    this.#tempsCleaned = true;
    const names = await fs.promises.readdir(this.directory).catch(() => [] as string[]);
    // Left by a daemon that died mid-write; rpc-server never looks at them.
    await Promise.all(names.filter((name) => name.startsWith(TEMP_PREFIX)).map((name) => fs.promises.rm(path.join(this.directory, name), { force: true })));
  }

  get #indexPath(): string {
    return path.join(path.dirname(this.directory), INDEX_FILE);
  }

  async #readIndex(): Promise<PrefillIndex> {
    try {
      const parsed = indexSchema.safeParse(JSON.parse(await fs.promises.readFile(this.#indexPath, "utf8")));
      return parsed.success ? parsed.data : {};
    } catch {
      return {};
    }
  }

  async #writeIndex(index: PrefillIndex): Promise<void> {
    const temp = `${this.#indexPath}${TEMP_PREFIX}${process.pid}`;
    await fs.promises.writeFile(temp, `${JSON.stringify(index)}\n`, { mode: 0o600 });
    await fs.promises.rename(temp, this.#indexPath);
  }
}
