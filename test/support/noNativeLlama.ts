/**
 * What `node-llama-cpp` resolves to in the unit project (vitest.config.ts): unit tests are
 * fast and load no native llama.cpp, so a test that reaches node-llama-cpp at run time fails
 * here, naming the rule, instead of quietly loading the native binding. Such a test belongs in
 * test/integration/. Type-only imports are erased and never get here.
 */

throw new Error("node-llama-cpp was loaded by a unit test: the unit project loads no native llama.cpp; move the test to test/integration/");

export {};
