/**
 * Grammars for constrained output (response_format and tool parameters), built once per
 * distinct schema and kept in a small LRU, because compiling a grammar costs more than a
 * short generation and clients tend to send the same schema with every request.
 */

import type { Llama, LlamaGrammar } from "node-llama-cpp";
import { errors } from "../../protocol/errors.js";
import type { ResponseFormat } from "../../protocol/inference.js";
import { normalizeGrammarSchema } from "./jsonSchemaSupport.js";

/** Distinct schemas kept compiled; older ones are rebuilt on demand. */
export const GRAMMAR_CACHE_ENTRIES = 32;

export class GrammarCache {
  readonly #llama: Llama;
  readonly #entries = new Map<string, Promise<LlamaGrammar>>();

  constructor(llama: Llama) {
    this.#llama = llama;
  }

  /** The grammar for `format`, or undefined for plain text. */
  async forResponseFormat(format: ResponseFormat): Promise<LlamaGrammar | undefined> {
    switch (format.type) {
      case "text":
        return undefined;
      case "json_object":
        return this.#cached("json", () => this.#llama.getGrammarFor("json"));
      case "json_schema": {
        const schema = normalizeGrammarSchema(format.schema, "response_format");
        const key = `schema:${JSON.stringify(schema)}`;
        return this.#cached(key, async () => {
          try {
            // The schema was checked above; the cast only bridges to node-llama-cpp's schema type.
            return await this.#llama.createGrammarForJsonSchema(schema as Parameters<Llama["createGrammarForJsonSchema"]>[0]);
          } catch (error) {
            throw errors.unsupportedSchema(`node-llama-cpp cannot build a grammar for this schema: ${error instanceof Error ? error.message : String(error)}`, {
              param: "response_format",
              cause: error,
            });
          }
        });
      }
    }
  }

  #cached(key: string, build: () => Promise<LlamaGrammar>): Promise<LlamaGrammar> {
    const existing = this.#entries.get(key);
    if (existing) {
      // Re-insert so the Map's order stays least-recently-used first.
      this.#entries.delete(key);
      this.#entries.set(key, existing);
      return existing;
    }
    const pending = build();
    this.#entries.set(key, pending);
    pending.catch(() => this.#entries.delete(key));
    while (this.#entries.size > GRAMMAR_CACHE_ENTRIES) {
      const oldest = this.#entries.keys().next().value;
      if (oldest === undefined) break;
      this.#entries.delete(oldest);
    }
    return pending;
  }
}
