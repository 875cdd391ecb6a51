/**
 * llama.cpp's own llama-server, for benches that put Hearth and llama-server side by side on the
 * same CPU kernels. ensureLlamaServer() builds it on first use from the exact llama.cpp source
 * the installed node-llama-cpp ships (node_modules/node-llama-cpp/llama/gitRelease.bundle), the
 * way native/build.mjs builds rpc-server: g++ directly, no cmake. Only llama-server's own code
 * is compiled (tools/server, tools/mtmd, cpp-httplib, the hash vendor code and an empty web UI);
 * llama.cpp's common library, libllama and libggml are node-llama-cpp's prebuilt ones, and the
 * CPU backend variants (libggml-cpu-*.so, where the kernels live) are linked beside the
 * executable, so ggml_backend_load_all() picks the same best variant node-llama-cpp does.
 * startLlamaServer() runs it on 127.0.0.1 and stops it.
 *
 * The build goes to native/build/llama-server/ (gitignored) with a stamp of the node-llama-cpp
 * version and a hash of the build recipe below (flags, defines, which CMake lists name the
 * sources); the sources themselves are fixed by the node-llama-cpp version. A matching stamp is a
 * no-op. The build is assembled in a temporary sibling folder and renamed into place when
 * complete. native/build.mjs replaces native/build/ as a whole when it rebuilds, which removes
 * this build too; the next ensureLlamaServer() then builds it again.
 */

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import { createRequire } from "node:module";
import net from "node:net";
import os from "node:os";
import path from "node:path";

const STAMP_FORMAT = 1;
/** Like make -j2: the machines Hearth targets often have 2 cores. */
const PARALLEL_JOBS = Math.min(2, os.availableParallelism());
const NICENESS = 10;
/** How long a model may take to load before startLlamaServer gives up. */
const STARTUP_TIMEOUT_MS = 180_000;
const HEALTH_POLL_MS = 100;
/** After SIGTERM, how long stop() waits before SIGKILL. */
const STOP_TIMEOUT_MS = 10_000;
const HELP_TIMEOUT_MS = 30_000;
/** Lines of compiler output or server log quoted in an error. */
const TAIL_LINES = 40;

/** node-llama-cpp's prebuilt CPU package per platform (as in native/build.mjs). */
const PLATFORM_PACKAGES: Readonly<Record<string, string>> = {
  "linux-x64": "@node-llama-cpp/linux-x64",
  "linux-arm64": "@node-llama-cpp/linux-arm64",
  "linux-arm": "@node-llama-cpp/linux-armv7l",
  "linux-riscv64": "@node-llama-cpp/linux-riscv64",
};

/**
 * Everything that decides the build besides the llama.cpp source; its hash is in the stamp.
 * Release flags as llama.cpp's CMake Release build (-O3 -DNDEBUG). The defines are the public
 * ones node-llama-cpp's libraries were built with (shared ggml/llama, dynamically loaded
 * backends, LLAMA_SUBPROCESS, which changes common_subproc's layout in common/subproc.h), so
 * the headers agree with the prebuilt libllama-common.so. Without OpenSSL, like that library's
 * own copy of cpp-httplib.
 */
const RECIPE = {
  cxxFlags: ["-std=c++17", "-O3", "-DNDEBUG", "-fPIC", "-pthread", "-D_GNU_SOURCE"],
  cFlags: ["-std=gnu11", "-O3", "-DNDEBUG", "-fPIC", "-pthread", "-D_GNU_SOURCE"],
  defines: ["-DGGML_SHARED", "-DGGML_BACKEND_SHARED", "-DGGML_BACKEND_DL", "-DLLAMA_SHARED", "-DLLAMA_SUBPROCESS"],
  includes: ["include", "ggml/include", "common", "vendor", "tools/mtmd", "tools/server", "."],
  /** vendor/cpp-httplib/CMakeLists.txt's private definitions. */
  httplibDefines: [
    "-DCPPHTTPLIB_FORM_URL_ENCODED_PAYLOAD_MAX_LENGTH=1048576",
    "-DCPPHTTPLIB_LISTEN_BACKLOG=512",
    "-DCPPHTTPLIB_REQUEST_URI_MAX_LENGTH=32768",
    "-DCPPHTTPLIB_TCP_NODELAY=1",
  ],
  /** tools/mtmd/CMakeLists.txt: MTMD_VIDEO is on when LLAMA_SUBPROCESS is; LLAMA_BUILD in shared builds. */
  mtmdDefines: ["-DMTMD_VIDEO", "-DLLAMA_BUILD"],
  /** The CMake lists whose .cpp/.c files are compiled (mtmd: its add_library(mtmd ...) block). */
  sourceLists: { server: "tools/server/CMakeLists.txt", mtmd: "tools/mtmd/CMakeLists.txt", hash: "vendor/hash/CMakeLists.txt" },
  httplib: "vendor/cpp-httplib/httplib.cpp",
  /** Prebuilt libraries linked, in order; the versioned names are matched by pattern. */
  link: ["libllama-common.so", "libllama.v*.so", "libggml.v*.so", "libggml-base.so"],
  /** The only parts of the llama.cpp tree the build reads. */
  checkout: ["include", "ggml/include", "common", "vendor", "tools/server", "tools/mtmd", "src/llama-ext.h", "tools/ui/ui.h.in", "tools/ui/ui.cpp.in"],
} as const;

const BINARY = "llama-server";

export interface EnsureLlamaServerOptions {
  /** Progress lines (unpacking, each compile, link, the build time). */
  log?: (line: string) => void;
}

export interface StartLlamaServerOptions {
  model: string;
  threads: number;
  parallelSlots: number;
  /** Each slot's context; the server gets `-c contextPerSlot × parallelSlots`. */
  contextPerSlot: number;
  /** Default: a free port. */
  port?: number;
  /** Appended to the command line, e.g. ["-fa", "off"]. */
  extraArgs?: readonly string[];
  /** Build progress, when the first start builds the binary. */
  log?: (line: string) => void;
}

export interface RunningLlamaServer {
  /** http://127.0.0.1:<port> */
  url: string;
  pid: number;
  /** Its stdout and stderr. */
  logFile: string;
  /** The CPU backend variant it loaded (from /proc/<pid>/maps), e.g. ".../libggml-cpu-haswell.so". */
  cpuBackend: string | null;
  stop(): Promise<void>;
}

interface Stamp {
  format: number;
  nodeLlamaCpp: string;
  platform: string;
  recipe: string;
  llamaCppCommit?: string;
  sources?: number;
  sourceListHash?: string;
  compiler?: string;
  buildSeconds?: number;
  builtAt?: string;
  /** Whether this llama-server has --no-webui (read from its --help). */
  noWebui?: boolean;
}

interface Setup {
  repoRoot: string;
  buildDir: string;
  cpuBins: string;
  bundle: string;
  key: Pick<Stamp, "format" | "nodeLlamaCpp" | "platform" | "recipe">;
}

interface Job {
  label: string;
  command: string;
  args: string[];
}

function readJson(file: string): unknown {
  return JSON.parse(fs.readFileSync(file, "utf8"));
}

function packageName(file: string): string | undefined {
  const manifest = readJson(file) as { name?: unknown };
  return typeof manifest.name === "string" ? manifest.name : undefined;
}

function packageVersion(directory: string): string {
  const manifest = readJson(path.join(directory, "package.json")) as { version?: unknown };
  if (typeof manifest.version !== "string") throw new Error(`${directory}/package.json has no version`);
  return manifest.version;
}

/** The nearest folder above `from` whose package.json is named `name`. */
function packageRoot(from: string, name: string): string {
  for (let directory = from; ; directory = path.dirname(directory)) {
    const manifest = path.join(directory, "package.json");
    if (fs.existsSync(manifest) && packageName(manifest) === name) return directory;
    if (path.dirname(directory) === directory) throw new Error(`cannot find the package folder of ${name} above ${from}`);
  }
}

function setup(): Setup {
  const platform = `${process.platform}-${process.arch}`;
  const cpuPackage = PLATFORM_PACKAGES[platform];
  if (!cpuPackage) throw new Error(`llama-server bench build: no node-llama-cpp prebuilt package for ${platform}`);
  const repoRoot = packageRoot(import.meta.dirname, "hearth");
  const require = createRequire(path.join(repoRoot, "package.json"));
  const nodeLlamaCpp = packageRoot(path.dirname(require.resolve("node-llama-cpp")), "node-llama-cpp");
  const version = packageVersion(nodeLlamaCpp);
  const bundle = path.join(nodeLlamaCpp, "llama", "gitRelease.bundle");
  if (!fs.existsSync(bundle)) throw new Error(`node-llama-cpp ${version} ships no llama.cpp source bundle at ${bundle}`);
  const cpuRoot = packageRoot(path.dirname(createRequire(path.join(nodeLlamaCpp, "package.json")).resolve(cpuPackage)), cpuPackage);
  if (packageVersion(cpuRoot) !== version) throw new Error(`${cpuPackage} is not at node-llama-cpp's version ${version}; reinstall`);
  const bins = path.join(cpuRoot, "bins");
  const binsName = (fs.existsSync(bins) ? fs.readdirSync(bins) : []).find((name) => fs.existsSync(path.join(bins, name, "libllama-common.so")));
  if (!binsName) throw new Error(`${cpuPackage} has no bins/*/libllama-common.so (llama.cpp's common library)`);
  const recipe = createHash("sha256").update(JSON.stringify(RECIPE)).digest("hex");
  return {
    repoRoot,
    buildDir: path.join(repoRoot, "native", "build", "llama-server"),
    cpuBins: path.join(bins, binsName),
    bundle,
    key: { format: STAMP_FORMAT, nodeLlamaCpp: version, platform, recipe },
  };
}

function readStamp(buildDir: string): Stamp | null {
  try {
    return readJson(path.join(buildDir, "stamp.json")) as Stamp;
  } catch {
    return null;
  }
}

function upToDate(s: Setup): Stamp | null {
  const stamp = readStamp(s.buildDir);
  if (!stamp) return null;
  const same = (Object.keys(s.key) as (keyof Setup["key"])[]).every((name) => stamp[name] === s.key[name]);
  return same && fs.existsSync(path.join(s.buildDir, BINARY)) ? stamp : null;
}

function toolVersion(command: string): string | null {
  const result = spawnSync(command, ["--version"], { encoding: "utf8" });
  return result.status === 0 ? (result.stdout.split("\n")[0] ?? "").trim() : null;
}

function requireTools(): { cxx: string; cc: string; compiler: string; nice: boolean } {
  const cxx = process.env.CXX || "g++";
  const cc = process.env.CC || "gcc";
  const compiler = toolVersion(cxx);
  const missing: string[] = [];
  if (!compiler) missing.push(process.env.CXX ? `the C++ compiler CXX=${cxx}` : "g++ (a C++17 compiler)");
  if (!toolVersion(cc)) missing.push(process.env.CC ? `the C compiler CC=${cc}` : "gcc (for llama.cpp's vendored C files)");
  if (!toolVersion("git")) missing.push("git (to unpack the llama.cpp source node-llama-cpp ships)");
  if (!compiler || missing.length > 0) {
    throw new Error(`cannot build llama-server: missing ${missing.join(", ")}. Debian/Ubuntu: sudo apt-get install g++ git`);
  }
  return { cxx, cc, compiler, nice: spawnSync("nice", ["-n", String(NICENESS), "true"]).status === 0 };
}

function tail(text: string, lines = TAIL_LINES): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}

function run(command: string, args: readonly string[]): string {
  const result = spawnSync(command, args, { encoding: "utf8", env: { ...process.env, GIT_TERMINAL_PROMPT: "0" } });
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(" ")} failed:\n${tail(result.stderr || result.stdout || (result.error?.message ?? `exit ${result.status}`))}`);
  }
  return result.stdout;
}

function extractSource(bundle: string, target: string): string {
  run("git", ["clone", "--quiet", "--no-checkout", bundle, target]);
  run("git", ["-C", target, "-c", "advice.detachedHead=false", "checkout", "--quiet", "HEAD", "--", ...RECIPE.checkout]);
  return run("git", ["-C", target, "rev-parse", "HEAD"]).trim();
}

/** Source files named in a CMake list (optionally only inside the block that starts at `block`), relative to the tree. */
function cmakeSources(source: string, list: string, block?: RegExp): string[] {
  let text = fs.readFileSync(path.join(source, list), "utf8").replace(/#.*$/gm, "");
  if (block) {
    const start = text.search(block);
    if (start < 0) throw new Error(`${list}: no ${String(block)} (llama.cpp changed; update test/bench/llamaServer.ts)`);
    text = text.slice(start, text.indexOf(")", start));
  }
  const files = [...text.matchAll(/(?<![\w$/{}.-])([\w./-]+\.(?:cpp|c))(?![\w.])/g)].map((match) => path.posix.join(path.posix.dirname(list), match[1] ?? ""));
  const unique = [...new Set(files)];
  for (const file of unique) if (!fs.existsSync(path.join(source, file))) throw new Error(`${list} names ${file}, which is not in the tree`);
  if (unique.length === 0) throw new Error(`${list}: no sources found (llama.cpp changed; update test/bench/llamaServer.ts)`);
  return unique;
}

/** C files that vendor/hash/CMakeLists.txt compiles as C++ (`set_source_files_properties(... PROPERTIES LANGUAGE CXX)`). */
function compiledAsCxx(source: string, list: string): Set<string> {
  const text = fs.readFileSync(path.join(source, list), "utf8");
  const names = [...text.matchAll(/set_source_files_properties\(([^)]*?)PROPERTIES\s+LANGUAGE\s+CXX\s*\)/g)].flatMap((match) => (match[1] ?? "").trim().split(/\s+/));
  return new Set(names.map((name) => path.posix.join(path.posix.dirname(list), name)));
}

/**
 * tools/ui's ui.h/ui.cpp with no assets, as scripts/ui-assets.cmake writes them when it has none
 * (there is no network to fetch the prebuilt UI, and the bench does not need it).
 */
function writeEmptyUi(source: string, outDir: string): string {
  const fill = (template: string): string => {
    const text = fs
      .readFileSync(path.join(source, "tools/ui", template), "utf8")
      .replace(/^#cmakedefine LLAMA_UI_HAS_ASSETS.*$/m, "/* #undef LLAMA_UI_HAS_ASSETS */")
      .replaceAll("@ASSET_ARRAYS@", "")
      .replaceAll("@ASSET_TABLE@", "")
      .replaceAll("@N_ASSETS@", "0")
      .replaceAll("@USE_GZIP@", "false");
    const left = text.match(/@[A-Z_]+@|#cmakedefine/);
    if (left) throw new Error(`tools/ui/${template}: unknown placeholder ${left[0]} (llama.cpp changed; update test/bench/llamaServer.ts)`);
    return text;
  };
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, "ui.h"), fill("ui.h.in"));
  fs.writeFileSync(path.join(outDir, "ui.cpp"), fill("ui.cpp.in"));
  return path.join(outDir, "ui.cpp");
}

/** Runs jobs, at most PARALLEL_JOBS at a time, each under nice; the first failure stops the queue. */
async function runJobs(jobs: readonly Job[], nice: boolean, log: (line: string) => void): Promise<void> {
  const queue = [...jobs];
  let done = 0;
  const failures: Error[] = [];
  const one = (job: Job): Promise<void> =>
    new Promise((resolve, reject) => {
      const [command, args] = nice ? ["nice", ["-n", String(NICENESS), job.command, ...job.args]] : [job.command, job.args];
      const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
      let output = "";
      child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
      child.on("error", reject);
      child.on("close", (code) => {
        if (code === 0) resolve();
        else reject(new Error(`llama-server build: ${job.label} failed (exit ${code}):\n${job.command} ${job.args.join(" ")}\n${tail(output)}`));
      });
    });
  const worker = async (): Promise<void> => {
    for (let job = queue.shift(); job && failures.length === 0; job = queue.shift()) {
      log(`llama-server build: [${done + 1}/${jobs.length}] ${job.label}`);
      try {
        await one(job);
        done += 1;
      } catch (error) {
        failures.push(error instanceof Error ? error : new Error(String(error)));
        queue.length = 0;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_JOBS, jobs.length) }, worker));
  const [first] = failures;
  if (first) throw first;
}

function prebuiltLibrary(cpuBins: string, pattern: string): string {
  const regex = new RegExp(`^${pattern.replaceAll(".", "\\.").replace("*", "[\\d.]+")}$`);
  const name = fs.readdirSync(cpuBins).find((entry) => regex.test(entry));
  if (!name) throw new Error(`no ${pattern} in ${cpuBins}`);
  return name;
}

/** The environment llama-server runs in: never Hearth's RPC shim or thread-pool preload. */
function serverEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.GGML_BACKEND_PATH;
  delete env.LD_PRELOAD;
  return env;
}

async function build(s: Setup, log: (line: string) => void): Promise<Stamp> {
  const started = performance.now();
  const tools = requireTools();
  const parent = path.dirname(s.buildDir);
  fs.mkdirSync(parent, { recursive: true });
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-llama-server-"));
  // A sibling of the build dir, so the relative links into node_modules stay valid after the rename.
  const outDir = fs.mkdtempSync(path.join(parent, ".llama-server-"));
  try {
    log(`llama-server build: unpacking llama.cpp from node-llama-cpp ${s.key.nodeLlamaCpp} ...`);
    const source = path.join(work, "llama.cpp");
    const commit = extractSource(s.bundle, source);
    const generated = path.join(work, "generated");
    const uiSource = writeEmptyUi(source, generated);

    const hashList = RECIPE.sourceLists.hash;
    const asCxx = compiledAsCxx(source, hashList);
    const groups: { files: string[]; extra: string[] }[] = [
      { files: cmakeSources(source, RECIPE.sourceLists.server), extra: [] },
      { files: cmakeSources(source, RECIPE.sourceLists.mtmd, /add_library\s*\(\s*mtmd\s/), extra: [...RECIPE.mtmdDefines] },
      { files: cmakeSources(source, hashList), extra: ["-I", path.join(source, path.posix.dirname(hashList))] },
      { files: [RECIPE.httplib], extra: [...RECIPE.httplibDefines] },
    ];
    const includes = [...RECIPE.includes.map((dir) => path.join(source, dir)), generated].flatMap((dir) => ["-I", dir]);
    const objects = path.join(work, "obj");
    fs.mkdirSync(objects);
    const jobs: (Job & { size: number })[] = [];
    const add = (file: string, absolute: string, extra: readonly string[]): void => {
      const cxx = !file.endsWith(".c") || asCxx.has(file);
      const object = path.join(objects, `${file.replaceAll("/", "_")}.o`);
      const flags = cxx ? [...RECIPE.cxxFlags, ...(file.endsWith(".c") ? ["-x", "c++"] : [])] : [...RECIPE.cFlags];
      jobs.push({ label: file, command: cxx ? tools.cxx : tools.cc, args: [...flags, ...RECIPE.defines, ...extra, ...includes, "-c", absolute, "-o", object], size: fs.statSync(absolute).size });
    };
    for (const group of groups) for (const file of group.files) add(file, path.join(source, file), group.extra);
    add("tools/ui/ui.cpp", uiSource, []);
    // Largest first, so the two workers finish together.
    jobs.sort((a, b) => b.size - a.size);
    const sourceListHash = createHash("sha256").update(jobs.map((job) => job.label).sort().join("\n")).digest("hex");
    log(`llama-server build: compiling ${jobs.length} files (llama.cpp ${commit.slice(0, 10)}, ${PARALLEL_JOBS} jobs, ${tools.compiler}) ...`);
    await runJobs(jobs, tools.nice, log);

    const binary = path.join(outDir, BINARY);
    const objectFiles = fs.readdirSync(objects).map((name) => path.join(objects, name));
    const libraries = RECIPE.link.map((pattern) => `-l:${prebuiltLibrary(s.cpuBins, pattern)}`);
    await runJobs(
      [{ label: `link ${BINARY}`, command: tools.cxx, args: ["-pthread", "-o", binary, ...objectFiles, "-L", s.cpuBins, ...libraries, "-Wl,-rpath,$ORIGIN"] }],
      tools.nice,
      log,
    );

    // The prebuilt libraries beside the executable: $ORIGIN finds the linked ones, and
    // ggml_backend_load_all() scores the CPU variants found in the executable's folder.
    for (const name of fs.readdirSync(s.cpuBins)) {
      if (/^lib(llama|ggml).*\.so$/.test(name)) fs.symlinkSync(path.relative(s.buildDir, path.join(s.cpuBins, name)), path.join(outDir, name));
    }
    const help = spawnSync(binary, ["--help"], { cwd: outDir, encoding: "utf8", env: serverEnv(), timeout: HELP_TIMEOUT_MS });
    const helpText = `${help.stdout}${help.stderr}`;
    if (help.status !== 0 || !helpText.includes("--port")) {
      throw new Error(`the built llama-server does not start:\n${tail(helpText || (help.error?.message ?? ""))}`);
    }

    const buildSeconds = Math.round((performance.now() - started) / 100) / 10;
    const stamp: Stamp = {
      ...s.key,
      llamaCppCommit: commit,
      sources: jobs.length,
      sourceListHash,
      compiler: tools.compiler,
      buildSeconds,
      builtAt: new Date().toISOString(),
      noWebui: helpText.includes("--no-webui"),
    };
    fs.writeFileSync(path.join(outDir, "stamp.json"), `${JSON.stringify(stamp, null, 2)}\n`);
    fs.chmodSync(outDir, 0o755);
    fs.rmSync(s.buildDir, { recursive: true, force: true });
    fs.renameSync(outDir, s.buildDir);
    log(`llama-server build: built in ${buildSeconds} s into ${path.relative(s.repoRoot, s.buildDir)}`);
    return stamp;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
    fs.rmSync(outDir, { recursive: true, force: true });
  }
}

/** Builds llama-server if its stamp does not match; returns the executable's path. */
export async function ensureLlamaServer(options: EnsureLlamaServerOptions = {}): Promise<string> {
  const s = setup();
  if (!upToDate(s)) await build(s, options.log ?? (() => {}));
  return path.join(s.buildDir, BINARY);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error("no free port"))));
    });
  });
}

function readTail(file: string): string {
  try {
    return tail(fs.readFileSync(file, "utf8"));
  } catch {
    return "";
  }
}

async function healthy(url: string): Promise<boolean> {
  try {
    const response = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2_000) });
    await response.body?.cancel();
    return response.status === 200;
  } catch {
    return false;
  }
}

/** The libggml-cpu-*.so variant a process has mapped (its log does not say at the default verbosity). */
function loadedCpuBackend(pid: number): string | null {
  try {
    return /\/\S*libggml-cpu[^/\s]*\.so/.exec(fs.readFileSync(`/proc/${pid}/maps`, "utf8"))?.[0] ?? null;
  } catch {
    return null;
  }
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => child.once("exit", () => resolve()));
}

/** Starts llama-server on 127.0.0.1 and resolves once GET /health answers 200. */
export async function startLlamaServer(options: StartLlamaServerOptions): Promise<RunningLlamaServer> {
  const binary = await ensureLlamaServer(options.log ? { log: options.log } : {});
  const directory = path.dirname(binary);
  const port = options.port ?? (await freePort());
  const url = `http://127.0.0.1:${port}`;
  const args = [
    ...["-m", options.model, "--host", "127.0.0.1", "--port", String(port)],
    ...["-c", String(options.contextPerSlot * options.parallelSlots), "-np", String(options.parallelSlots)],
    ...["-t", String(options.threads), "-tb", String(options.threads)],
    // Chat templates: llama-server uses jinja by default, so no --jinja.
    ...(readStamp(directory)?.noWebui ? ["--no-webui"] : []),
    ...(options.extraArgs ?? []),
  ];
  const logFile = path.join(directory, `llama-server-${port}.log`);
  const fd = fs.openSync(logFile, "w");
  // cwd is the build folder: ggml also scans the working directory for backends.
  const child = spawn(binary, args, { cwd: directory, env: serverEnv(), stdio: ["ignore", fd, fd] });
  fs.closeSync(fd);
  const killOnExit = (): void => void child.kill("SIGKILL");
  process.once("exit", killOnExit);
  const gone = exited(child);
  const spawnErrors: Error[] = [];
  child.once("error", (error) => spawnErrors.push(error));

  const stop = async (): Promise<void> => {
    process.removeListener("exit", killOnExit);
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
    await gone;
    clearTimeout(timer);
  };

  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  for (;;) {
    const [spawnError] = spawnErrors;
    if (spawnError || child.exitCode !== null || child.signalCode !== null) {
      await stop();
      const reason = spawnError ? `failed to start (${spawnError.message})` : `exited (${child.exitCode ?? child.signalCode})`;
      throw new Error(`llama-server ${reason} before it was ready; ${logFile}:\n${readTail(logFile)}`);
    }
    if (await healthy(url)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`llama-server was not ready within ${STARTUP_TIMEOUT_MS / 1000} s; ${logFile}:\n${readTail(logFile)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, HEALTH_POLL_MS));
  }
  return { url, pid: child.pid ?? -1, logFile, cpuBackend: child.pid === undefined ? null : loadedCpuBackend(child.pid), stop };
}
