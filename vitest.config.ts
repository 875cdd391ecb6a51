import { defineConfig } from "vitest/config";

// Three projects so failures are easy to read: fast pure tests, tests that start real
// daemons and runners with synthetic models, and multi-host tests in network namespaces. `npm test` runs all three.
export default defineConfig({
  test: {
    projects: [
      {
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
