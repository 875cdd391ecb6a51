#!/usr/bin/env node
// Builds Hearth's native parts: the RPC shim backend (loaded into runners through
// GGML_BACKEND_PATH), the thread-pool preload (loaded into runners through LD_PRELOAD; see
// hearth-threadpool.cpp) and llama.cpp's rpc-server (the worker that serves a peer's layers).
//
// Run by `npm install` (postinstall) and `npm run build:native`. Both parts are compiled from
// the exact llama.cpp source bundled in the installed node-llama-cpp
// (node_modules/node-llama-cpp/llama/gitRelease.bundle) and linked against node-llama-cpp's
// prebuilt libggml for this platform, so they always speak the same RPC protocol and tensor
// layout as the runners. Only five source files are compiled (a few seconds on 2 cores); no
// cmake.
//
// Output goes to native/build/ (gitignored) with a stamp of the node-llama-cpp version, the
// platform package, the GPU flavours present and a hash of the native sources. A matching stamp
// makes the script a fast no-op; any change rebuilds. The new build is assembled in a temporary
// folder and swapped in only when complete, so a failed build leaves the previous one intact.
//
//   node native/build.mjs            build if out of date
//   node native/build.mjs --force    rebuild regardless of the stamp
//   HEARTH_SKIP_NATIVE=1             skip entirely (layer splitting is then unavailable here)
//   CXX=clang++                      compiler to use (default g++)

import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";

const STAMP_FORMAT = 1;
/** Like make -j2: the machines Hearth targets often have 2 cores, and other work shares them. */
const PARALLEL_JOBS = Math.min(2, os.availableParallelism());
const NATIVE_DIR = import.meta.dirname;
const BUILD_DIR = path.join(NATIVE_DIR, "build");
const SHIM_LIBRARY = "libhearth-rpc-shim.so";
const THREADPOOL_LIBRARY = "libhearth-threadpool.so";
/** Files whose content decides what gets built: a change to any of them rebuilds. */
const HASHED_SOURCES = ["hearth-rpc-shim.cpp", "hearth-threadpool.cpp", "rpc-server-hooks.cpp", "build.mjs"];
/** The only parts of the llama.cpp tree the build reads. */
const LLAMA_PATHS = ["include/llama.h", "ggml/include", ":(glob)ggml/src/*.h", "ggml/src/ggml-rpc", "tools/rpc/rpc-server.cpp"];
/** node-llama-cpp's prebuilt packages per platform (see its compileLLamaCpp.js), GPU flavours with the backend library they add. */
const PLATFORM_PACKAGES = {
  "linux-x64": { cpu: "@node-llama-cpp/linux-x64", gpu: { cuda: ["@node-llama-cpp/linux-x64-cuda", "libggml-cuda.so"], vulkan: ["@node-llama-cpp/linux-x64-vulkan", "libggml-vulkan.so"] } },
  "linux-arm64": { cpu: "@node-llama-cpp/linux-arm64", gpu: {} },
  "linux-arm": { cpu: "@node-llama-cpp/linux-armv7l", gpu: {} },
  "linux-riscv64": { cpu: "@node-llama-cpp/linux-riscv64", gpu: {} },
};

class BuildError extends Error {}

function log(message) {
  process.stderr.write(`hearth native: ${message}\n`);
}

function failHint() {
  return [
    "  To install Hearth without the native parts, set HEARTH_SKIP_NATIVE=1; this machine then cannot split models",
    "  across machines (serving whole models and routing still work). Retry with: npm run build:native",
  ].join("\n");
}

function readJson(file) {
  return JSON.parse(fs.readFileSync(file, "utf8"));
}

/** node-llama-cpp's package folder and version, as resolved from the project root. */
function findNodeLlamaCpp() {
  const require = createRequire(path.join(NATIVE_DIR, "..", "package.json"));
  let entry;
  try {
    entry = require.resolve("node-llama-cpp");
  } catch {
    throw new BuildError("node-llama-cpp is not installed (run npm install first).");
  }
  const directory = packageRoot(entry, "node-llama-cpp");
  return { directory, version: readJson(path.join(directory, "package.json")).version };
}

function packageRoot(entryFile, name) {
  for (let directory = path.dirname(entryFile); ; directory = path.dirname(directory)) {
    const manifest = path.join(directory, "package.json");
    if (fs.existsSync(manifest) && readJson(manifest).name === name) return directory;
    if (path.dirname(directory) === directory) throw new BuildError(`cannot find the package folder of ${name}`);
  }
}

/** The folder inside a prebuilt package's bins/ that holds `marker`, or null when the package is absent or of another version. */
function prebuiltBinsDir(nodeLlamaCpp, packageName, marker) {
  const require = createRequire(path.join(nodeLlamaCpp.directory, "package.json"));
  let entry;
  try {
    entry = require.resolve(packageName);
  } catch {
    return null;
  }
  const root = packageRoot(entry, packageName);
  if (readJson(path.join(root, "package.json")).version !== nodeLlamaCpp.version) return null;
  const bins = path.join(root, "bins");
  for (const name of fs.existsSync(bins) ? fs.readdirSync(bins) : []) {
    if (fs.existsSync(path.join(bins, name, marker))) return path.join(bins, name);
  }
  return null;
}

function sourceHash() {
  const hash = createHash("sha256");
  for (const name of HASHED_SOURCES) {
    hash.update(`${name}\0`);
    hash.update(fs.readFileSync(path.join(NATIVE_DIR, name)));
    hash.update("\0");
  }
  return hash.digest("hex");
}

function wantedStamp() {
  const platform = `${process.platform}-${process.arch}`;
  const packages = PLATFORM_PACKAGES[platform];
  if (!packages) {
    throw new BuildError(`no native build for ${platform}: Hearth builds rpc-server and the RPC shim on Linux (x64, arm64, armv7l, riscv64) only.`);
  }
  const nodeLlamaCpp = findNodeLlamaCpp();
  const cpuBins = prebuiltBinsDir(nodeLlamaCpp, packages.cpu, "libggml-base.so");
  if (!cpuBins) throw new BuildError(`node-llama-cpp's prebuilt binaries (${packages.cpu}@${nodeLlamaCpp.version}) are not installed; reinstall without --omit=optional.`);
  const gpuBins = {};
  for (const [backend, [packageName, library]] of Object.entries(packages.gpu)) {
    const bins = prebuiltBinsDir(nodeLlamaCpp, packageName, library);
    if (bins) gpuBins[backend] = { bins, library };
  }
  const bundle = path.join(nodeLlamaCpp.directory, "llama", "gitRelease.bundle");
  if (!fs.existsSync(bundle)) throw new BuildError(`node-llama-cpp ${nodeLlamaCpp.version} ships no llama.cpp source bundle at ${bundle}.`);
  return {
    key: { format: STAMP_FORMAT, nodeLlamaCpp: nodeLlamaCpp.version, platform, backends: ["cpu", ...Object.keys(gpuBins).sort()], sourceHash: sourceHash() },
    cpuBins,
    gpuBins,
    bundle,
  };
}

function upToDate(key) {
  try {
    const stamp = readJson(path.join(BUILD_DIR, "stamp.json"));
    const same = Object.entries(key).every(([name, value]) => JSON.stringify(stamp[name]) === JSON.stringify(value));
    const complete = [SHIM_LIBRARY, THREADPOOL_LIBRARY].every((library) => fs.existsSync(path.join(BUILD_DIR, "lib", library))) && key.backends.every((backend) => fs.existsSync(path.join(BUILD_DIR, "rpc-server", backend, "rpc-server")));
    return same && complete;
  } catch {
    return false;
  }
}

function toolVersion(command) {
  const result = spawnSync(command, ["--version"], { encoding: "utf8" });
  return result.status === 0 ? result.stdout.split("\n")[0].trim() : null;
}

/** The compiler and git, or one message naming everything that is missing. */
function requireTools() {
  const cxx = process.env.CXX || "g++";
  const compiler = toolVersion(cxx);
  const git = toolVersion("git");
  const missing = [];
  if (!compiler) missing.push(process.env.CXX ? `the C++ compiler CXX=${cxx}` : "g++ (a C++17 compiler)");
  if (!git) missing.push("git (to unpack the llama.cpp source that node-llama-cpp ships)");
  if (missing.length > 0) {
    throw new BuildError(
      [
        `cannot build rpc-server and the RPC shim: missing ${missing.join(" and ")}.`,
        "  Install the build tools, e.g. Debian/Ubuntu: sudo apt-get install g++ git",
        "                                Fedora:        sudo dnf install gcc-c++ git",
        "                                Arch:          sudo pacman -S gcc git",
      ].join("\n"),
    );
  }
  const niceWorks = spawnSync("nice", ["-n", "10", "true"]).status === 0;
  return { cxx, compiler, niceWorks };
}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { encoding: "utf8", env: { ...process.env, GIT_TERMINAL_PROMPT: "0" }, ...options });
  if (result.status !== 0) {
    throw new BuildError(`${command} ${args.join(" ")} failed:\n${result.stderr || result.stdout || result.error?.message || `exit ${result.status}`}`);
  }
  return result.stdout;
}

/** Unpacks only the files the build reads; returns the commit and the RPC protocol version. */
/**
 * ggml-rpc sends a weight tensor by its hash (so a pre-filled rpc-server cache skips the bytes)
 * only when it is larger than HASH_THRESHOLD, 10 MiB upstream. Typical 1-8B models' attention
 * matrices are 4-10 MiB, so upstream a "cached" load still pushes a quarter of the weights.
 * The client only ever hashes weight buffers (rpc_use_hash_cache), never activations, so a
 * lower threshold costs nothing at run time. daemon/rpc/fnv1a.ts RPC_HASH_THRESHOLD_BYTES must
 * match (its unit test reads this file).
 */
const WEIGHT_HASH_THRESHOLD_BYTES = 64 * 1024;

function patchHashThreshold(source) {
  const file = path.join(source, "ggml/src/ggml-rpc/ggml-rpc.cpp");
  const text = fs.readFileSync(file, "utf8");
  const upstream = /const size_t HASH_THRESHOLD = 10 \* 1024 \* 1024;/;
  if (!upstream.test(text)) throw new Error("ggml-rpc.cpp: HASH_THRESHOLD is not where this build expects it (llama.cpp changed); update native/build.mjs");
  fs.writeFileSync(file, text.replace(upstream, `const size_t HASH_THRESHOLD = ${WEIGHT_HASH_THRESHOLD_BYTES}; // hearth: native/build.mjs`));
}

/**
 * ggml-rpc writes each message as two or three send(2) calls (command byte, size, payload;
 * responses: size, payload) with TCP_NODELAY, and its client's dispatcher thread sends each
 * queued request on its own, so every piece is its own segment and wakes the reader on its own.
 * Through a tunnel every wake is a daemon relay on the core the runner or rpc-server computes
 * on: one 1b token is nine requests (seven SET_TENSOR, GRAPH_RECOMPUTE, GET_TENSOR), 27 wakes of
 * the host's daemon, each of which also preempts the runner's next send. Hearth's build:
 *   - sends a message up to BATCH_MAX_BYTES in one send(2) (send_msg, send_rpc_cmd);
 *   - lets the client's dispatcher gather requests while more are already queued behind them
 *     and send them in one send(2) when the queue runs dry, a response is awaited, or
 *     BATCH_MAX_BYTES is reached. Nothing waits that would not have waited anyway: the thread
 *     was about to send the queued requests back to back.
 * Bytes on the wire and their order are unchanged. These are optimisations: if llama.cpp moves
 * the code they anchor on, the build warns and keeps upstream's behaviour.
 */
const BATCH_MAX_BYTES = 256 * 1024;

/** Code inserted at an exact upstream line: `before` it, or `after` it (at the start of the function it opens). */
const ANCHORED_INSERTS = [
  {
    what: "send_msg in one send(2)",
    anchor: "static bool send_msg(socket_ptr sock, const void * msg, size_t msg_size) {\n",
    after: [
      "    // hearth (native/build.mjs): one send(2) for a small message.",
      `    if (msg_size <= ${BATCH_MAX_BYTES}) {`,
      "        std::vector<uint8_t> whole(sizeof(msg_size) + msg_size);",
      "        memcpy(whole.data(), &msg_size, sizeof(msg_size));",
      "        if (msg_size > 0) memcpy(whole.data() + sizeof(msg_size), msg, msg_size);",
      "        return sock->send_data(whole.data(), whole.size()) && sock->flush();",
      "    }",
    ],
  },
  {
    what: "send_rpc_cmd in one send(2)",
    anchor: "static bool send_rpc_cmd(socket_ptr sock, enum rpc_cmd cmd, const void * input, size_t input_size) {\n",
    // The request's bytes as upstream sends them in three calls; the dispatcher batching uses it too.
    before: [
      "// hearth (native/build.mjs): appends one request, | cmd u8 | size u64 | input |, to `out`.",
      "static void append_rpc_request(std::vector<uint8_t> & out, enum rpc_cmd cmd, const void * input, size_t input_size) {",
      "    size_t at = out.size();",
      "    out.resize(at + 1 + sizeof(input_size) + input_size);",
      "    out[at] = (uint8_t) cmd;",
      "    memcpy(out.data() + at + 1, &input_size, sizeof(input_size));",
      "    if (input_size > 0) memcpy(out.data() + at + 1 + sizeof(input_size), input, input_size);",
      "}",
      "",
    ],
    after: [
      "    // hearth (native/build.mjs): one send(2) for a small request.",
      `    if (input_size <= ${BATCH_MAX_BYTES}) {`,
      "        std::vector<uint8_t> whole;",
      "        append_rpc_request(whole, cmd, input, input_size);",
      "        return sock->send_data(whole.data(), whole.size()) && sock->flush();",
      "    }",
    ],
  },
  {
    what: "message_queue::empty()",
    anchor: "    void interrupt() {\n        std::unique_lock<std::mutex> lock(mutex);\n",
    before: [
      "    // hearth (native/build.mjs): lets the dispatcher see whether more requests are queued.",
      "    bool empty() {",
      "        std::unique_lock<std::mutex> lock(mutex);",
      "        return queue.empty();",
      "    }",
      "",
    ],
  },
];

const UPSTREAM_DISPATCH = `void rpc_dispatcher::work() {
    while (running) {
        rpc_msg_ptr msg_ptr;
        if (!queue.pop(&msg_ptr)) {
            break;
        }
        if (msg_ptr->cmd != RPC_CMD_NONE) {
            if (msg_ptr->output) {
                bool status = send_rpc_cmd(sock, msg_ptr->cmd, msg_ptr->input.get(), msg_ptr->input_size, msg_ptr->output, msg_ptr->output_size);
                RPC_STATUS_ASSERT(status);
            } else {
                bool status = send_rpc_cmd(sock, msg_ptr->cmd, msg_ptr->input.get(), msg_ptr->input_size);
                RPC_STATUS_ASSERT(status);
            }
        }
        msg_ptr->completion.set_value();
    }
}
`;

const BATCHING_DISPATCH = `void rpc_dispatcher::work() {
    // hearth (native/build.mjs): queued requests go out together, in order, in one send(2).
    std::vector<uint8_t> pending;
    auto send_pending = [&]() -> bool {
        if (pending.empty()) return true;
        bool ok = sock->send_data(pending.data(), pending.size()) && sock->flush();
        pending.clear();
        return ok;
    };
    while (running) {
        rpc_msg_ptr msg_ptr;
        if (!queue.pop(&msg_ptr)) {
            break;
        }
        if (msg_ptr->cmd != RPC_CMD_NONE) {
            if (msg_ptr->input_size > ${BATCH_MAX_BYTES}) {
                RPC_STATUS_ASSERT(send_pending());
                bool status = msg_ptr->output
                    ? send_rpc_cmd(sock, msg_ptr->cmd, msg_ptr->input.get(), msg_ptr->input_size, msg_ptr->output, msg_ptr->output_size)
                    : send_rpc_cmd(sock, msg_ptr->cmd, msg_ptr->input.get(), msg_ptr->input_size);
                RPC_STATUS_ASSERT(status);
            } else {
                append_rpc_request(pending, msg_ptr->cmd, msg_ptr->input.get(), msg_ptr->input_size);
                if (msg_ptr->output) {
                    RPC_STATUS_ASSERT(send_pending());
                    uint64_t out_size;
                    RPC_STATUS_ASSERT(sock->recv_data(&out_size, sizeof(out_size)) && out_size == msg_ptr->output_size);
                    RPC_STATUS_ASSERT(sock->recv_data(msg_ptr->output, msg_ptr->output_size));
                }
            }
        }
        if (pending.size() >= ${BATCH_MAX_BYTES} || queue.empty()) {
            RPC_STATUS_ASSERT(send_pending());
        }
        msg_ptr->completion.set_value();
    }
}
`;

/** Applies what it can; returns the optimisations that could not be applied (their anchors moved). */
function patchMessageBatching(source) {
  const file = path.join(source, "ggml/src/ggml-rpc/ggml-rpc.cpp");
  let text = fs.readFileSync(file, "utf8");
  const skipped = [];
  const anchored = (anchor) => text.split(anchor).length === 2;
  for (const patch of ANCHORED_INSERTS) {
    if (!anchored(patch.anchor)) {
      skipped.push(patch.what);
      continue;
    }
    const lines = (block) => (block === undefined ? "" : `${block.join("\n")}\n`);
    text = text.replace(patch.anchor, `${lines(patch.before)}${patch.anchor}${lines(patch.after)}`);
  }
  // The dispatcher's batching needs message_queue::empty() and append_rpc_request().
  const needs = ["message_queue::empty()", "send_rpc_cmd in one send(2)"];
  if (anchored(UPSTREAM_DISPATCH) && !needs.some((what) => skipped.includes(what))) text = text.replace(UPSTREAM_DISPATCH, BATCHING_DISPATCH);
  else skipped.push("dispatcher batching");
  fs.writeFileSync(file, text);
  return skipped;
}

function extractSource(bundle, target) {
  run("git", ["clone", "--quiet", "--no-checkout", bundle, target]);
  run("git", ["-C", target, "-c", "advice.detachedHead=false", "checkout", "--quiet", "HEAD", "--", ...LLAMA_PATHS]);
  const commit = run("git", ["-C", target, "rev-parse", "HEAD"]).trim();
  const header = fs.readFileSync(path.join(target, "ggml/include/ggml-rpc.h"), "utf8");
  const part = (name) => header.match(new RegExp(`#define\\s+RPC_PROTO_${name}_VERSION\\s+(\\d+)`))?.[1] ?? "?";
  const rpcProtocol = ["MAJOR", "MINOR", "PATCH"].map(part).join(".");
  return { commit, rpcProtocol };
}

/** Runs compiler jobs, at most `parallel` at a time, each under nice so installs do not starve the machine. */
async function runJobs(jobs, { cxx, niceWorks }, parallel) {
  const queue = [...jobs];
  const worker = async () => {
    for (let job = queue.shift(); job; job = queue.shift()) {
      const [command, args] = niceWorks ? ["nice", ["-n", "10", cxx, ...job.args]] : [cxx, job.args];
      await new Promise((resolve, reject) => {
        const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
        let output = "";
        child.stdout.on("data", (chunk) => (output += chunk));
        child.stderr.on("data", (chunk) => (output += chunk));
        child.on("error", reject);
        child.on("close", (code) => (code === 0 ? resolve() : reject(new BuildError(`compiling ${job.label} failed (exit ${code}):\n${cxx} ${job.args.join(" ")}\n${output}`))));
      }).catch((error) => {
        queue.length = 0; // the other worker finishes its current job and stops
        throw error;
      });
    }
  };
  const results = await Promise.allSettled(Array.from({ length: Math.min(parallel, jobs.length) }, worker));
  const failure = results.find((result) => result.status === "rejected");
  if (failure) throw failure.reason;
}

function symlinkInto(directory, target, name = path.basename(target)) {
  fs.symlinkSync(path.relative(directory, target), path.join(directory, name));
}

/**
 * One folder per backend: rpc-server loads every libggml-<backend>*.so beside its executable
 * (and in its working directory), so the folder decides what the worker can serve. The
 * prebuilt libraries are linked, not copied; cpu variants and libggml-base are identical across
 * node-llama-cpp's flavours.
 */
function layoutServer(outDir, backend, built, cpuBins, gpu) {
  const directory = path.join(outDir, "rpc-server", backend);
  fs.mkdirSync(directory, { recursive: true });
  fs.copyFileSync(built.server, path.join(directory, "rpc-server"));
  fs.chmodSync(path.join(directory, "rpc-server"), 0o755);
  fs.copyFileSync(built.rpcBackend, path.join(directory, "libggml-rpc.so"));
  for (const name of fs.readdirSync(cpuBins)) {
    if (name === "libggml-base.so" || /^libggml\.v[\d.]+\.so$/.test(name) || /^libggml-cpu.*\.so$/.test(name)) symlinkInto(directory, path.join(cpuBins, name));
  }
  if (gpu) symlinkInto(directory, path.join(gpu.bins, gpu.library));
  // Proves the executable links and its backends load, without listening anywhere.
  const check = spawnSync(path.join(directory, "rpc-server"), ["--help"], { cwd: directory, encoding: "utf8", env: serverEnv(), timeout: 30_000 });
  if (check.status !== 0 || !/Usage/.test(check.stderr)) throw new BuildError(`the built rpc-server (${backend}) does not start:\n${check.stderr}${check.error?.message ?? ""}`);
}

/** The shim must never be loaded into rpc-server itself. */
function serverEnv() {
  const env = { ...process.env };
  delete env.GGML_BACKEND_PATH;
  return env;
}

async function build(wanted, tools) {
  const started = performance.now();
  fs.mkdirSync(NATIVE_DIR, { recursive: true });
  const work = fs.mkdtempSync(path.join(NATIVE_DIR, ".work-"));
  // A sibling of BUILD_DIR, so the relative links into node_modules stay valid after the rename.
  const outDir = fs.mkdtempSync(path.join(NATIVE_DIR, ".build-"));
  try {
    const source = path.join(work, "llama.cpp");
    const { commit, rpcProtocol } = extractSource(wanted.bundle, source);
    patchHashThreshold(source);
    const skipped = patchMessageBatching(source);
    if (skipped.length > 0) log(`llama.cpp moved code this build patches; kept upstream behaviour for: ${skipped.join(", ")} (tunnels stay correct, only slower; update native/build.mjs)`);
    const objects = path.join(work, "obj");
    fs.mkdirSync(objects);
    fs.mkdirSync(path.join(outDir, "lib"), { recursive: true });

    const rpcSource = path.join(source, "ggml/src/ggml-rpc");
    const common = ["-std=c++17", "-O2", "-fPIC", "-pthread", "-DNDEBUG", "-D_GNU_SOURCE", "-I", path.join(source, "ggml/include"), "-I", path.join(source, "ggml/src"), "-I", rpcSource];
    // The shim exports only ggml_backend_init; ggml-rpc inside it is private to it.
    const shimFlags = [...common, "-fvisibility=hidden"];
    // libggml-rpc.so for rpc-server is a dynamically loaded backend, like node-llama-cpp's own.
    const backendFlags = [...common, "-DGGML_BACKEND_DL", "-DGGML_BACKEND_BUILD", "-DGGML_BACKEND_SHARED", "-DGGML_SHARED"];
    const serverFlags = [...common, "-DGGML_SHARED", "-DGGML_BACKEND_SHARED"];
    const object = (name) => path.join(objects, name);
    const compile = (label, flags, input) => ({ label, args: [...flags, "-c", input, "-o", object(label)] });
    await runJobs(
      [
        // Slowest first so the two workers finish together.
        compile("shim-ggml-rpc.o", shimFlags, path.join(rpcSource, "ggml-rpc.cpp")),
        compile("server-ggml-rpc.o", backendFlags, path.join(rpcSource, "ggml-rpc.cpp")),
        compile("rpc-server.o", serverFlags, path.join(source, "tools/rpc/rpc-server.cpp")),
        compile("shim-transport.o", shimFlags, path.join(rpcSource, "transport.cpp")),
        compile("server-transport.o", backendFlags, path.join(rpcSource, "transport.cpp")),
        compile("hearth-rpc-shim.o", shimFlags, path.join(NATIVE_DIR, "hearth-rpc-shim.cpp")),
        compile("rpc-server-hooks.o", serverFlags, path.join(NATIVE_DIR, "rpc-server-hooks.cpp")),
        compile("hearth-threadpool.o", [...shimFlags, "-I", path.join(source, "include")], path.join(NATIVE_DIR, "hearth-threadpool.cpp")),
      ],
      tools,
      PARALLEL_JOBS,
    );

    const cpuBins = wanted.cpuBins;
    const ggmlLibrary = fs.readdirSync(cpuBins).find((name) => /^libggml\.v[\d.]+\.so$/.test(name));
    if (!ggmlLibrary) throw new BuildError(`no libggml.v*.so in ${cpuBins}`);
    const linkAgainst = ["-L", cpuBins, "-l:libggml-base.so"];
    const built = { shim: path.join(outDir, "lib", SHIM_LIBRARY), threadpool: path.join(outDir, "lib", THREADPOOL_LIBRARY), rpcBackend: object("libggml-rpc.so"), server: object("rpc-server") };
    await runJobs(
      [
        // No rpath: the runner has node-llama-cpp's libggml-base loaded already, found by its soname.
        { label: SHIM_LIBRARY, args: ["-shared", "-pthread", "-Wl,--no-undefined", "-o", built.shim, object("hearth-rpc-shim.o"), object("shim-ggml-rpc.o"), object("shim-transport.o"), ...linkAgainst] },
        // Linked against nothing of llama.cpp's: it finds the libraries the runner has loaded.
        { label: THREADPOOL_LIBRARY, args: ["-shared", "-pthread", "-Wl,--no-undefined", "-o", built.threadpool, object("hearth-threadpool.o"), "-ldl"] },
        { label: "libggml-rpc.so", args: ["-shared", "-pthread", "-Wl,--no-undefined", "-o", built.rpcBackend, object("server-ggml-rpc.o"), object("server-transport.o"), ...linkAgainst, "-Wl,-rpath,$ORIGIN"] },
        { label: "rpc-server", args: ["-pthread", "-o", built.server, object("rpc-server.o"), object("rpc-server-hooks.o"), "-L", cpuBins, `-l:${ggmlLibrary}`, "-l:libggml-base.so", "-Wl,-rpath,$ORIGIN"] },
      ],
      tools,
      PARALLEL_JOBS,
    );

    layoutServer(outDir, "cpu", built, cpuBins, null);
    for (const [backend, gpu] of Object.entries(wanted.gpuBins)) layoutServer(outDir, backend, built, cpuBins, gpu);

    const buildSeconds = Math.round((performance.now() - started) / 100) / 10;
    const stamp = { ...wanted.key, llamaCppCommit: commit, rpcProtocol, compiler: tools.compiler, builtAt: new Date().toISOString(), buildSeconds };
    fs.writeFileSync(path.join(outDir, "stamp.json"), `${JSON.stringify(stamp, null, 2)}\n`);

    // mkdtemp made it private; the daemon may run as another user than the installer.
    fs.chmodSync(outDir, 0o755);
    fs.rmSync(BUILD_DIR, { recursive: true, force: true });
    fs.renameSync(outDir, BUILD_DIR);
    return stamp;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
    fs.rmSync(outDir, { recursive: true, force: true });
  }
}

async function main() {
  if (process.env.HEARTH_SKIP_NATIVE === "1") {
    log("skipped (HEARTH_SKIP_NATIVE=1): layer splitting across machines is unavailable on this machine.");
    return 0;
  }
  const force = process.argv.includes("--force");
  try {
    const wanted = wantedStamp();
    if (!force && upToDate(wanted.key)) {
      log(`up to date (node-llama-cpp ${wanted.key.nodeLlamaCpp}, ${wanted.key.backends.join(", ")}).`);
      return 0;
    }
    const tools = requireTools();
    log(`building rpc-server, the RPC shim and the thread-pool preload for node-llama-cpp ${wanted.key.nodeLlamaCpp} (${wanted.key.platform}, ${wanted.key.backends.join(", ")}) with ${tools.compiler} ...`);
    const stamp = await build(wanted, tools);
    log(`built in ${stamp.buildSeconds} s into ${path.relative(process.cwd(), BUILD_DIR) || BUILD_DIR} (llama.cpp ${stamp.llamaCppCommit.slice(0, 10)}, RPC protocol ${stamp.rpcProtocol}).`);
    return 0;
  } catch (error) {
    if (!(error instanceof BuildError)) throw error;
    log(`${error.message}\n${failHint()}`);
    return 1;
  }
}

process.exitCode = await main();
