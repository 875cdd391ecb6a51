import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// Four projects so failures are easy to read: fast pure tests, tests that start real
// daemons and runners with synthetic models, official API clients against a real daemon, and
// multi-host tests in network namespaces. `npm test` runs them all.
export default defineConfig({
  test: {
    projects: [
      {
        // Unit tests load no native llama.cpp: node-llama-cpp resolves to a module that fails
        // the test that reached it (test/support/noNativeLlama.ts); such tests go to integration.
        resolve: { alias: [{ find: /^node-llama-cpp(\/.*)?$/, replacement: fileURLToPath(new URL("./test/support/noNativeLlama.ts", import.meta.url)) }] },
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          // Each file starts its own daemons; running files one at a time keeps 2 cores honest.
          fileParallelism: false,
        },
      },
      {
        test: {
          // Each API family's official client (openai, @anthropic-ai/sdk, ollama) against a real daemon.
          name: "clients",
          include: ["test/clients/**/*.test.ts"],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
      {
        test: {
          name: "cluster",
          include: ["test/cluster/**/*.test.ts"],
          testTimeout: 180_000,
          hookTimeout: 180_000,
          // Multi-host tests in Linux network namespaces; they need root and iproute2.
          fileParallelism: false,
        },
      },
    ],
  },
});
