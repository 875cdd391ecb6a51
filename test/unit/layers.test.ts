// The layering rules of eslint.layers.js (docs/architecture.md, "Layers") refuse a module
// that imports from a layer above its own, I/O in a pure layer, a child program reaching into
// the daemon side, and an error made outside the catalogue; and the project's lint config
// applies them. Fixtures are linted as if they stood at the path each rule guards.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ESLint, type Linter } from "eslint";
import tseslint from "typescript-eslint";
import { beforeAll, describe, expect, it } from "vitest";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const FIXTURES = path.join(ROOT, "test/fixtures/layers");

let layerRules: Linter.Config[];
let eslint: ESLint;

beforeAll(async () => {
  ({ layerRules } = (await import(path.join(ROOT, "eslint.layers.js"))) as { layerRules: Linter.Config[] });
  eslint = new ESLint({
    cwd: ROOT,
    overrideConfigFile: true,
    overrideConfig: [{ files: ["**/*.ts"], languageOptions: { parser: tseslint.parser } }, ...layerRules],
  });
});

async function lintAs(fixture: string, at: string): Promise<Linter.LintMessage[]> {
  const code = fs.readFileSync(path.join(FIXTURES, fixture), "utf8");
  const [result] = await eslint.lintText(code, { filePath: path.join(ROOT, at) });
  return result!.messages;
}

describe("layer rules", () => {
  it("refuse protocol/ importing the daemon", async () => {
    const messages = await lintAs("protocol-imports-daemon.ts.txt", "protocol/fixture.ts");
    expect(messages.map((message) => message.ruleId)).toEqual(["no-restricted-imports"]);
    expect(messages[0]!.message).toContain("protocol/ may import only protocol/");
  });

  it("refuse I/O in scheduler/", async () => {
    const messages = await lintAs("scheduler-reads-files.ts.txt", "scheduler/fixture.ts");
    expect(messages.map((message) => message.ruleId)).toEqual(["no-restricted-imports"]);
    expect(messages[0]!.message).toContain("scheduler/ is pure: no I/O");
  });

  it("refuse the runner child program importing the daemon side", async () => {
    const messages = await lintAs("runner-imports-daemon.ts.txt", "daemon/runner/fixture.ts");
    expect(messages.map((message) => message.ruleId)).toEqual(["no-restricted-imports"]);
    expect(messages[0]!.message).toContain("A child program imports nothing from the daemon side");
  });

  it("refuse the daemon importing the CLI", async () => {
    const messages = await lintAs("daemon-imports-cli.ts.txt", "daemon/http/fixture.ts");
    expect(messages.map((message) => message.ruleId)).toEqual(["no-restricted-imports"]);
  });

  it("refuse an error made outside the catalogue's factories", async () => {
    const messages = await lintAs("handmade-error.ts.txt", "protocol/peer/fixture.ts");
    expect(messages.map((message) => message.ruleId)).toEqual(["no-restricted-syntax"]);
  });

  it("accept a module that stays in its layer", async () => {
    expect(await lintAs("protocol-clean.ts.txt", "protocol/peer/fixture.ts")).toEqual([]);
  });

  it("are part of the project's lint config", async () => {
    const { default: config } = (await import(path.join(ROOT, "eslint.config.js"))) as { default: Linter.Config[] };
    for (const rule of layerRules) expect(config).toContain(rule);
  });
});
