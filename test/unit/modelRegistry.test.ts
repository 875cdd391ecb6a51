// The model registry over real files: listing, metadata, aliases, duplicate ids, invalid
// files, header caching, and the file hash cache.

import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pino, type Logger } from "pino";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { readGgufHeader } from "../../daemon/gguf/reader.js";
import { SYNTH_PRESETS } from "../../daemon/gguf/synth.js";
import { validateModelAliases } from "../../daemon/models/aliases.js";
import { FileHashCache } from "../../daemon/models/fileHash.js";
import { ModelRegistry, type ModelRegistryOptions } from "../../daemon/models/ModelRegistry.js";
import { ensureModel, ensureTinyModel } from "../support/models.js";
import { rejectionOf, thrownBy } from "../support/thrown.js";

let root: string;
let tinyPath: string;
let q8Path: string;
beforeAll(async () => {
  root = await fs.promises.mkdtemp(path.join(os.tmpdir(), "hearth-registry-test-"));
  tinyPath = await ensureTinyModel();
  q8Path = await ensureModel({ preset: "tiny", layers: 2, quant: "q8_0" }, "registry-q8");
});
afterAll(async () => {
  await fs.promises.rm(root, { recursive: true, force: true });
});

let modelsDir: string;
// The registry's warnings are its only report of a file it skips, an id it shadows or an alias
// that points nowhere (no API lists them), and "once per file version" is a property of the
// warning itself: here the log line is the behaviour under test.
let logLines: { msg: string; [key: string]: unknown }[];
let logger: Logger;
beforeEach(async () => {
  modelsDir = await fs.promises.mkdtemp(path.join(root, "models-"));
  logLines = [];
  logger = pino({ level: "warn" }, { write: (line: string) => void logLines.push(JSON.parse(line) as { msg: string }) });
});

/** A registry whose header reads are counted. */
function countingRegistry(options: Partial<ModelRegistryOptions> = {}): { registry: ModelRegistry; reads: string[] } {
  const reads: string[] = [];
  const registry = new ModelRegistry({
    modelsDir,
    logger,
    readHeader: (file, limits) => {
      reads.push(file);
      return readGgufHeader(file, limits);
    },
    ...options,
  });
  return { registry, reads };
}

async function expectNotFound(promise: Promise<unknown>): Promise<void> {
  expect(await rejectionOf(promise)).toMatchObject({ code: "HEARTH_MODEL_NOT_FOUND", param: "model" });
}

describe("list", () => {
  it("lists *.gguf regular files (and symlinks to them) with metadata from their headers", async () => {
    await fs.promises.copyFile(tinyPath, path.join(modelsDir, "tiny.gguf"));
    await fs.promises.symlink(q8Path, path.join(modelsDir, "linked-q8.gguf"));
    await fs.promises.writeFile(path.join(modelsDir, "notes.txt"), "not a model");
    await fs.promises.mkdir(path.join(modelsDir, "dir.gguf"));
    await fs.promises.writeFile(path.join(modelsDir, ".hidden.gguf"), "x");
    await fs.promises.mkdir(path.join(modelsDir, "nested"));
    await fs.promises.copyFile(tinyPath, path.join(modelsDir, "nested", "deep.gguf"));

    const { registry } = countingRegistry();
    const models = await registry.list();
    expect(models.map((model) => model.id)).toEqual(["linked-q8", "tiny"]);
    const tiny = models.find((model) => model.id === "tiny")!;
    const stat = await fs.promises.stat(path.join(modelsDir, "tiny.gguf"));
    expect(tiny).toEqual({
      id: "tiny",
      aliases: [],
      path: path.join(modelsDir, "tiny.gguf"),
      sizeBytes: stat.size,
      createdAt: Math.floor(stat.mtimeMs / 1000),
      architecture: "llama",
      parameterCount: 1_665_664,
      quantization: "F32",
      contextLength: SYNTH_PRESETS.tiny.contextLength,
      layerCount: SYNTH_PRESETS.tiny.layers,
      embeddingLength: SYNTH_PRESETS.tiny.embd,
    });
    expect(models.find((model) => model.id === "linked-q8")).toMatchObject({ quantization: "Q8_0", layerCount: 2 });
    expect(logLines).toEqual([]);
  });

  it("a missing models dir is an empty list, not an error", async () => {
    const { registry } = countingRegistry({ modelsDir: path.join(root, "does-not-exist") });
    expect(await registry.list()).toEqual([]);
  });

  it("sees files added and removed between calls", async () => {
    const { registry } = countingRegistry();
    expect(await registry.list()).toEqual([]);
    await fs.promises.copyFile(tinyPath, path.join(modelsDir, "late.gguf"));
    expect((await registry.list()).map((model) => model.id)).toEqual(["late"]);
    await fs.promises.rm(path.join(modelsDir, "late.gguf"));
    expect(await registry.list()).toEqual([]);
  });

  it("includes extra paths after the models dir", async () => {
    const extraDir = await fs.promises.mkdtemp(path.join(root, "extra-"));
    const extra = path.join(extraDir, "Outside.GGUF");
    await fs.promises.copyFile(q8Path, extra);
    await fs.promises.copyFile(tinyPath, path.join(modelsDir, "inside.gguf"));
    const { registry } = countingRegistry({ extraPaths: [extra, path.join(extraDir, "missing.gguf")] });
    const models = await registry.list();
    expect(models.map((model) => [model.id, model.path])).toEqual([
      ["inside", path.join(modelsDir, "inside.gguf")],
      ["Outside", extra],
    ]);
    await registry.list();
    expect(logLines.filter((line) => line.msg === "extra model path cannot be read")).toHaveLength(1);
  });

  it("on duplicate ids the models dir wins over extra paths, with one warning", async () => {
    const extraDir = await fs.promises.mkdtemp(path.join(root, "dup-"));
    await fs.promises.copyFile(tinyPath, path.join(modelsDir, "same.gguf"));
    await fs.promises.copyFile(q8Path, path.join(extraDir, "same.gguf"));
    const { registry } = countingRegistry({ extraPaths: [path.join(extraDir, "same.gguf"), path.join(modelsDir, "same.gguf")] });
    for (let i = 0; i < 3; i++) {
      const models = await registry.list();
      expect(models).toHaveLength(1);
      expect(models[0]).toMatchObject({ id: "same", path: path.join(modelsDir, "same.gguf"), quantization: "F32" });
    }
    const warnings = logLines.filter((line) => line.msg.startsWith("duplicate model id"));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ component: "models", id: "same", path: path.join(extraDir, "same.gguf") });
  });

  it("skips files that are not valid GGUF, warning once per file version", async () => {
    await fs.promises.copyFile(tinyPath, path.join(modelsDir, "good.gguf"));
    const bad = path.join(modelsDir, "bad.gguf");
    await fs.promises.writeFile(bad, "definitely not gguf");
    const truncated = path.join(modelsDir, "truncated.gguf");
    await fs.promises.writeFile(truncated, (await fs.promises.readFile(tinyPath)).subarray(0, 5000));
    const { registry } = countingRegistry();
    expect((await registry.list()).map((model) => model.id)).toEqual(["good"]);
    expect((await registry.list()).map((model) => model.id)).toEqual(["good"]);
    const skipped = () => logLines.filter((line) => line.msg === "skipping model file that is not valid GGUF");
    expect(skipped().map((line) => line["path"]).sort()).toEqual([bad, truncated]);
    expect(skipped()[0]!["reason"]).toMatch(/invalid GGUF/);

    // A new version of the broken file is reported again; a fixed one appears.
    await fs.promises.writeFile(bad, "still not gguf, but longer");
    await registry.list();
    expect(skipped()).toHaveLength(3);
    await fs.promises.copyFile(tinyPath, truncated);
    expect((await registry.list()).map((model) => model.id)).toEqual(["good", "truncated"]);
  });

  it("parses each file once while its size and mtime are unchanged, again when they change", async () => {
    const file = path.join(modelsDir, "cached.gguf");
    await fs.promises.copyFile(tinyPath, file);
    const { registry, reads } = countingRegistry();
    await registry.list();
    await registry.list();
    await registry.resolve("cached");
    await Promise.all([registry.list(), registry.list()]);
    expect(reads).toEqual([file]);

    // Same size, new mtime (another seed of the same shape): parsed again.
    await fs.promises.copyFile(await ensureModel({ preset: "tiny", seed: 2 }, "registry-seed2"), file);
    expect((await fs.promises.stat(file)).size).toBe((await fs.promises.stat(tinyPath)).size);
    const future = new Date(Date.now() + 60_000);
    await fs.promises.utimes(file, future, future);
    await registry.list();
    expect(reads).toEqual([file, file]);
    // New size: parsed again, and the new metadata is served.
    await fs.promises.copyFile(q8Path, file);
    expect((await registry.list())[0]).toMatchObject({ id: "cached", quantization: "Q8_0" });
    expect(reads).toEqual([file, file, file]);
  });
});

describe("resolve", () => {
  beforeEach(async () => {
    await fs.promises.copyFile(tinyPath, path.join(modelsDir, "tiny.gguf"));
    await fs.promises.copyFile(q8Path, path.join(modelsDir, "other.gguf"));
  });

  it("resolves ids and aliases (one level) and lists aliases on their model", async () => {
    const { registry } = countingRegistry({ aliases: { default: "tiny", fast: "other", gone: "missing-model" } });
    expect((await registry.resolve("tiny")).id).toBe("tiny");
    expect((await registry.resolve("default")).id).toBe("tiny");
    expect((await registry.resolve("fast")).path).toBe(path.join(modelsDir, "other.gguf"));
    const models = await registry.list();
    expect(models.find((model) => model.id === "tiny")!.aliases).toEqual(["default"]);
    expect(models.find((model) => model.id === "other")!.aliases).toEqual(["fast"]);
    await expectNotFound(registry.resolve("gone"));
    expect(logLines.filter((line) => line.msg === "alias points to a model that is not present")).toHaveLength(1);
  });

  it("unknown names are HEARTH_MODEL_NOT_FOUND and never become paths", async () => {
    const { registry, reads } = countingRegistry({ aliases: { a: "tiny" } });
    for (const name of ["nope", "", "tiny.gguf", "../tiny", path.join(modelsDir, "tiny.gguf"), "./tiny", "constructor", "__proto__", "toString", "x".repeat(10_000)]) {
      await expectNotFound(registry.resolve(name));
    }
    expect((await rejectionOf(registry.resolve("nope"))).message).toBe('model "nope" not found on this node');
    expect((await rejectionOf(registry.resolve("y".repeat(10_000)))).message.length).toBeLessThan(300);
    expect(new Set(reads)).toEqual(new Set([path.join(modelsDir, "other.gguf"), path.join(modelsDir, "tiny.gguf")]));
  });

  it("an alias named like a real model id is shadowed: the id always resolves to its own file", async () => {
    const { registry } = countingRegistry({ aliases: { other: "tiny" } });
    expect((await registry.resolve("other")).id).toBe("other");
    expect((await registry.list()).every((model) => model.aliases.length === 0)).toBe(true);
    expect(logLines.filter((line) => line.msg.startsWith("alias has the same name"))).toHaveLength(1);
  });
});

describe("validateModelAliases", () => {
  it("accepts a plain table", () => {
    expect(() => validateModelAliases({ default: "tiny", fast: "tiny" })).not.toThrow();
  });

  const bad: [Record<string, unknown>, string][] = [
    [{ a: "b", b: "c" }, "models.aliases.a"],
    [{ self: "self" }, "models.aliases.self"],
    [{ "": "tiny" }, "models.aliases."],
    [{ " padded": "tiny" }, "models.aliases. padded"],
    [{ empty: "" }, "models.aliases.empty"],
    [{ number: 5 }, "models.aliases.number"],
    [{ long: "x".repeat(300) }, "models.aliases.long"],
  ];
  for (const [aliases, param] of bad) {
    it(`rejects ${JSON.stringify(aliases).slice(0, 60)} with HEARTH_CONFIG_INVALID`, () => {
      expect(thrownBy(() => validateModelAliases(aliases))).toMatchObject({ code: "HEARTH_CONFIG_INVALID", param });
    });
  }
});

describe("sha256", () => {
  it("hashes a model file, once per file version", async () => {
    const file = path.join(modelsDir, "hashed.gguf");
    await fs.promises.copyFile(tinyPath, file);
    const expected = createHash("sha256").update(await fs.promises.readFile(file)).digest("hex");
    let hashed = 0;
    const cache = new FileHashCache(async (target) => {
      hashed++;
      return createHash("sha256").update(await fs.promises.readFile(target)).digest("hex");
    });
    expect(await Promise.all([cache.sha256(file), cache.sha256(file)])).toEqual([expected, expected]);
    expect(await cache.sha256(file)).toBe(expected);
    expect(hashed).toBe(1);
    await fs.promises.appendFile(file, "x");
    expect(await cache.sha256(file)).not.toBe(expected);
    expect(hashed).toBe(2);
  });

  it("the registry hashes by id or alias with the streaming hasher", async () => {
    await fs.promises.copyFile(q8Path, path.join(modelsDir, "q8.gguf"));
    const { registry } = countingRegistry({ aliases: { q: "q8" } });
    const expected = createHash("sha256").update(await fs.promises.readFile(q8Path)).digest("hex");
    expect(await registry.sha256("q")).toBe(expected);
    await expectNotFound(registry.sha256("nope"));
  });
});
