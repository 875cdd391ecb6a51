// The layers of the tree, enforced (docs/architecture.md, "Layers"):
//   protocol/   contracts: messages, schemas, the error catalogue. Imports only itself.
//   scheduler/  pure policy: placement, splitting, batches, retries. Imports protocol/ only.
//   daemon/     the I/O: sockets, files, processes. Imports protocol/ and scheduler/, never cli/.
//   daemon/runner/ and daemon/hardware/gpuProbeMain.ts are child programs: they import nothing
//               from the daemon side (protocol/ and scheduler/ only, and their own folder).
//   cli/        talks to a daemon over HTTP: imports protocol/ (and its own folder) only. Its
//               entry, cli/main.ts, is the one place that hands it the commands acting on this
//               machine (daemon/commands/, behind cli/localMachine.ts), and imports nothing
//               else of daemon/.
// Exported on its own so test/unit/layers.test.ts can lint fixtures with exactly these rules.

/** Node modules that do I/O; pure layers use none of them. */
const IO_MODULES = [
  "fs",
  "fs/promises",
  "net",
  "tls",
  "http",
  "https",
  "http2",
  "dgram",
  "dns",
  "child_process",
  "cluster",
  "worker_threads",
  "os",
  "readline",
  "inspector",
].flatMap((name) => [name, `node:${name}`]);

/** Packages that reach the world (sockets, native code, logs). */
const IO_PACKAGES = ["ws", "bonjour-service", "node-llama-cpp", "pino", "pino-pretty", "commander"];

const pure = (layer, allowed) => ({
  paths: [...IO_MODULES, ...IO_PACKAGES].map((name) => ({ name, message: `${layer}/ is pure: no I/O (move this to daemon/).` })),
  patterns: [
    {
      regex: allowed,
      message: `${layer}/ may import only ${layer === "protocol" ? "protocol/" : "protocol/ and scheduler/"} (docs/architecture.md, "Layers").`,
    },
  ],
});

export const layerRules = [
  // A relative import that climbs out of the layer's folder names another layer.
  { files: ["protocol/*.ts"], rules: { "no-restricted-imports": ["error", pure("protocol", "^\\.\\./")] } },
  { files: ["protocol/*/*.ts"], rules: { "no-restricted-imports": ["error", pure("protocol", "^\\.\\./\\.\\./")] } },
  { files: ["scheduler/*.ts"], rules: { "no-restricted-imports": ["error", pure("scheduler", "^\\.\\./(?!protocol/)")] } },
  {
    files: ["daemon/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        { patterns: [{ regex: "(^|/)(cli|test)/", message: "daemon/ never imports cli/ or test/ (docs/architecture.md, \"Layers\")." }] },
      ],
    },
  },
  {
    // Child programs: their own folder, protocol/ and scheduler/; never the daemon side.
    files: ["daemon/runner/**/*.ts", "daemon/hardware/gpuProbeMain.ts", "daemon/hardware/gpuInfo.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              regex: "^\\.\\./(?!\\.\\./(protocol|scheduler)/)",
              message: "A child program imports nothing from the daemon side: only its own folder, protocol/ and scheduler/ (docs/architecture.md, \"Processes\").",
            },
          ],
        },
      ],
    },
  },
  {
    files: ["cli/**/*.ts"],
    ignores: ["cli/main.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        { patterns: [{ regex: "(^|/)daemon/", message: "cli/ imports protocol/, never daemon/: the commands that act on this machine are handed in by cli/main.ts." }] },
      ],
    },
  },
  {
    // The entry hands the CLI this machine's commands, and nothing else of the daemon.
    files: ["cli/main.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        { patterns: [{ regex: "(^|/)daemon/(?!commands/)", message: "cli/main.ts imports only daemon/commands/ of the daemon side: what the CLI does on this machine is behind cli/localMachine.ts." }] },
      ],
    },
  },
  {
    // Errors come from the catalogue's factories only (protocol/errors.ts).
    files: ["protocol/**/*.ts", "scheduler/**/*.ts", "daemon/**/*.ts", "cli/**/*.ts"],
    ignores: ["protocol/errors.ts"],
    rules: {
      "no-restricted-syntax": ["error", { selector: "NewExpression[callee.name='HearthError']", message: "Make errors with a factory from `errors` in protocol/errors.ts." }],
    },
  },
];
