/**
 * Where the fake runner program (test/support/fakeRunner.ts) is, compiled: the real
 * RunnerProcess forks it as a plain Node program, so it runs from dist/. Throws a clear message
 * when the build is missing or older than the source.
 */

import fs from "node:fs";
import path from "node:path";
import { REPO_ROOT } from "./cli.js";

export function fakeRunnerEntry(): string {
  const source = path.join(REPO_ROOT, "test", "support", "fakeRunner.ts");
  const built = path.join(REPO_ROOT, "dist", "test", "support", "fakeRunner.js");
  if (!fs.existsSync(built) || (fs.existsSync(source) && fs.statSync(built).mtimeMs < fs.statSync(source).mtimeMs)) {
    throw new Error(`${built} is missing or older than ${source}; run \`npm run build\` first.`);
  }
  return built;
}
