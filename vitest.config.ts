import { defineConfig } from "vitest/config";

// Two projects so failures are easy to read: fast pure tests, and tests that start real
// daemons and runners with synthetic models. `npm test` runs both.
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
    ],
  },
});
