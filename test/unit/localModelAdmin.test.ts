// Aliases made through the API (daemon/models/AliasStore.ts) and what the API may do to this
// node's models (daemon/models/LocalModelAdmin.ts), over real files and a real registry: stored
// aliases resolve and persist, configured ones win and cannot be changed, and a delete removes
// only a directory entry of the models dir, never an extra path or a link's target.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ALIAS_FILE_NAME, AliasStore } from "../../daemon/models/AliasStore.js";
import { LocalModelAdmin } from "../../daemon/models/LocalModelAdmin.js";
import { ModelRegistry } from "../../daemon/models/ModelRegistry.js";
import { ensureTinyModel } from "../support/models.js";
import { rejectionOf } from "../support/thrown.js";

const logger = pino({ level: "silent" });
let root: string;
let tinyPath: string;
let home: string;
let modelsDir: string;
let dataDir: string;
let extraPath: string;

beforeAll(async () => {
  root = await fs.promises.mkdtemp(path.join(os.tmpdir(), "hearth-admin-test-"));
  tinyPath = await ensureTinyModel();
});
afterAll(async () => {
  await fs.promises.rm(root, { recursive: true, force: true });
});
beforeEach(async () => {
  home = await fs.promises.mkdtemp(path.join(root, "home-"));
  modelsDir = path.join(home, "models");
  dataDir = path.join(home, "data");
  await fs.promises.mkdir(modelsDir);
  await fs.promises.mkdir(dataDir);
  await fs.promises.copyFile(tinyPath, path.join(modelsDir, "owned.gguf"));
  await fs.promises.symlink(tinyPath, path.join(modelsDir, "linked.gguf"));
  await fs.promises.mkdir(path.join(home, "elsewhere"));
  extraPath = path.join(home, "elsewhere", "outside.gguf");
  await fs.promises.copyFile(tinyPath, extraPath);
});

async function setUp(configuredAliases: Record<string, string> = {}) {
  const aliases = await AliasStore.load(dataDir, logger);
  const registry = new ModelRegistry({ modelsDir, extraPaths: [extraPath], aliases: configuredAliases, storedAliases: aliases, logger });
  const unloaded: string[] = [];
  let refreshes = 0;
  const admin = new LocalModelAdmin({
    modelsDir,
    extraPaths: [extraPath],
    configuredAliases,
    registry,
    engine: { load: () => Promise.resolve(), unload: (id: string) => (unloaded.push(id), Promise.resolve()) },
    aliases,
    refresh: () => Promise.resolve(refreshes++),
    logger,
  });
  return { admin, registry, unloaded, refreshes: () => refreshes };
}

describe("stored aliases", () => {
  it("resolve like configured ones, are listed on their model, and survive a restart", async () => {
    const { admin, registry, refreshes } = await setUp();
    await admin.createAlias("mine", "owned");
    expect((await registry.resolve("mine")).id).toBe("owned");
    expect((await registry.list()).find((model) => model.id === "owned")?.aliases).toEqual(["mine"]);
    expect(refreshes()).toBe(1);
    expect(JSON.parse(await fs.promises.readFile(path.join(dataDir, ALIAS_FILE_NAME), "utf8"))).toEqual({ format: 1, aliases: { mine: "owned" } });

    const again = await setUp();
    expect((await again.registry.resolve("mine")).id).toBe("owned");
    expect(await again.admin.localId("mine")).toBe("owned");
  });

  it("can be pointed elsewhere, and never take a model id or a configured alias", async () => {
    const { admin, registry } = await setUp({ cfg: "owned" });
    await admin.createAlias("mine", "owned");
    await admin.createAlias("mine", "linked");
    expect((await registry.resolve("mine")).id).toBe("linked");
    expect((await rejectionOf(admin.createAlias("owned", "linked"))).message).toBe('"owned" is the name of a model file on this node; choose another name.');
    expect((await rejectionOf(admin.createAlias("cfg", "linked"))).message).toBe('"cfg" is an alias in the configuration (models.aliases); change it there.');
    expect((await rejectionOf(admin.createAlias(" x", "owned"))).param).toBe("destination");
    expect((await rejectionOf(admin.createAlias("y", "nope"))).code).toBe("HEARTH_MODEL_NOT_FOUND");
  });

  it("a file that is not an alias table stops the start, naming it", async () => {
    await fs.promises.writeFile(path.join(dataDir, ALIAS_FILE_NAME), "{not json");
    const error = await rejectionOf(AliasStore.load(dataDir, logger));
    expect(error.code).toBe("HEARTH_CONFIG_INVALID");
    expect(error.message).toContain(ALIAS_FILE_NAME);
  });
});

describe("deleting a name", () => {
  it("removes a stored alias and leaves its model", async () => {
    const { admin, registry } = await setUp();
    await admin.createAlias("mine", "owned");
    expect(await admin.remove("mine")).toEqual({ kind: "alias", modelId: "owned" });
    expect((await rejectionOf(registry.resolve("mine"))).code).toBe("HEARTH_MODEL_NOT_FOUND");
    expect(fs.existsSync(path.join(modelsDir, "owned.gguf"))).toBe(true);
  });

  it("deletes a model file of the models dir after unloading it", async () => {
    const { admin, registry, unloaded } = await setUp();
    expect(await admin.remove("owned")).toEqual({ kind: "file", modelId: "owned" });
    expect(unloaded).toEqual(["owned"]);
    expect(fs.existsSync(path.join(modelsDir, "owned.gguf"))).toBe(false);
    expect((await registry.list()).map((model) => model.id)).not.toContain("owned");
  });

  it("deletes a link in the models dir, never the file it points to", async () => {
    const { admin } = await setUp();
    expect(await admin.remove("linked")).toEqual({ kind: "file", modelId: "linked" });
    expect(fs.existsSync(path.join(modelsDir, "linked.gguf"))).toBe(false);
    expect(fs.existsSync(tinyPath)).toBe(true);
  });

  it("refuses a model outside the models dir, a configured alias, and a model an alias still names", async () => {
    const { admin, unloaded } = await setUp({ cfg: "linked" });
    expect((await rejectionOf(admin.remove("outside"))).message).toBe('"outside" is not in this node\'s models dir (it is a configured extra path); Hearth deletes only files in the models dir.');
    expect(fs.existsSync(extraPath)).toBe(true);
    expect((await rejectionOf(admin.remove("cfg"))).message).toBe('"cfg" is an alias in the configuration (models.aliases); remove it there.');
    await admin.createAlias("mine", "owned");
    expect((await rejectionOf(admin.remove("owned"))).message).toBe('"owned" is still named by "mine"; delete those names first.');
    expect((await rejectionOf(admin.remove("linked"))).message).toBe('"linked" is still named by "cfg"; delete those names first.');
    expect(fs.existsSync(path.join(modelsDir, "owned.gguf"))).toBe(true);
    expect(unloaded).toEqual([]);
  });

  it("answers undefined for a name that is nothing here, and never turns it into a path", async () => {
    const { admin } = await setUp();
    for (const name of ["nope", "../models/owned", "owned.gguf", path.join(modelsDir, "owned.gguf"), "..", "/"]) expect(await admin.remove(name)).toBeUndefined();
    expect(fs.existsSync(path.join(modelsDir, "owned.gguf"))).toBe(true);
  });
});

describe("model details", () => {
  it("read the chat template and infill tokens from the GGUF, and nothing for a model not here", async () => {
    const { admin } = await setUp();
    const details = await admin.details("owned");
    expect(details).toEqual({ chatTemplate: expect.any(String) as string, infill: false });
    expect(await admin.details("nope")).toBeUndefined();
  });
});
