/**
 * Which JSON schemas Hearth can enforce with node-llama-cpp's grammar, and their normal form.
 *
 * node-llama-cpp turns a JSON schema into a GBNF grammar but silently ignores what it does not
 * understand: `pattern`, `minimum`, `allOf`, an unknown `type`, and a schema without a type
 * (which it turns into `null`). Output from such a grammar would claim to follow a schema it
 * never enforced, so Hearth rejects those schemas up front (HEARTH_UNSUPPORTED_SCHEMA) and
 * names the keyword. What it accepts it normalises: `anyOf` becomes `oneOf` (for generation
 * they mean the same thing: any alternative may be produced).
 *
 * Note that node-llama-cpp always generates every listed property of an object, so optional
 * properties come out present; the output is still valid against the schema.
 *
 * Pure: no I/O.
 */

import { errors } from "../../protocol/errors.js";

/** Nesting beyond this is rejected rather than risking deep recursion in the grammar builder. */
export const MAX_SCHEMA_DEPTH = 64;

const PRIMITIVE_TYPES = new Set(["string", "number", "integer", "boolean", "null"]);
const ALL_TYPES = new Set([...PRIMITIVE_TYPES, "object", "array"]);
const STRING_FORMATS = new Set(["date-time", "time", "date"]);

// Keywords that only annotate; dropping them changes nothing that is enforced.
const ANNOTATIONS = new Set(["description", "title", "$schema", "$id", "$comment", "default", "examples", "deprecated", "readOnly", "writeOnly"]);

const KEYWORDS_BY_KIND: Record<string, ReadonlySet<string>> = {
  object: new Set(["type", "properties", "required", "additionalProperties", "minProperties", "maxProperties", "$defs"]),
  array: new Set(["type", "items", "prefixItems", "minItems", "maxItems", "$defs"]),
  string: new Set(["type", "minLength", "maxLength", "format"]),
  primitive: new Set(["type"]),
  // A "type" next to const/enum is redundant (the values fix it), so it is accepted and dropped.
  const: new Set(["const", "type"]),
  enum: new Set(["enum", "type"]),
  oneOf: new Set(["oneOf", "anyOf", "$defs"]),
  ref: new Set(["$ref", "$defs"]),
};

type Json = Record<string, unknown>;

/**
 * Checks `schema` and returns the form node-llama-cpp should get. Throws HearthError
 * HEARTH_UNSUPPORTED_SCHEMA (with `param`) naming the first unsupported construct.
 */
export function normalizeGrammarSchema(schema: unknown, param: string): Json {
  return new SchemaWalker(param).walk(schema, "#", 0, new Set());
}

class SchemaWalker {
  constructor(private readonly param: string) {}

  walk(schema: unknown, path: string, depth: number, defsInScope: ReadonlySet<string>): Json {
    if (depth > MAX_SCHEMA_DEPTH) this.fail(path, `nests deeper than ${MAX_SCHEMA_DEPTH} levels`);
    if (typeof schema !== "object" || schema === null || Array.isArray(schema)) {
      this.fail(path, "must be a schema object (boolean schemas and arrays are not supported)");
    }
    const source = schema as Json;
    const defs = this.collectDefs(source, path, defsInScope);
    const kind = this.kindOf(source, path);
    const allowed = KEYWORDS_BY_KIND[kind]!;
    const out: Json = {};
    for (const [key, value] of Object.entries(source)) {
      if (ANNOTATIONS.has(key)) {
        if (key === "description" && typeof value === "string") out[key] = value;
        continue;
      }
      if (!allowed.has(key)) this.fail(path, `uses "${key}", which cannot be enforced${kind === "primitive" || kind === "string" ? "" : ` on a ${kind} schema`}`);
    }
    if (defs) out["$defs"] = this.walkDefs(source["$defs"] as Json, path, depth, defs.scope);
    const scope = defs?.scope ?? defsInScope;
    switch (kind) {
      case "ref":
        return { ...out, $ref: this.checkRef(source["$ref"], path, scope) };
      case "const":
        return { ...out, const: this.literal(source["const"], `${path}/const`) };
      case "enum":
        return { ...out, enum: this.enumValues(source["enum"], path) };
      case "oneOf":
        return { ...out, oneOf: this.alternatives(source, path, depth, scope) };
      case "object":
        return { ...out, ...this.objectKeywords(source, path, depth, scope) };
      case "array":
        return { ...out, ...this.arrayKeywords(source, path, depth, scope) };
      case "string":
        return { ...out, ...this.stringKeywords(source, path) };
      default:
        return { ...out, type: source["type"] };
    }
  }

  private kindOf(schema: Json, path: string): string {
    if ("$ref" in schema) return "ref";
    if ("const" in schema) return "const";
    if ("enum" in schema) return "enum";
    if ("oneOf" in schema || "anyOf" in schema) return "oneOf";
    if (!("type" in schema)) {
      const unknown = Object.keys(schema).find((key) => !ANNOTATIONS.has(key) && key !== "$defs");
      if (unknown !== undefined) this.fail(path, `uses "${unknown}", which cannot be enforced`);
      this.fail(path, 'has no "type" (schemas that accept any value cannot be enforced)');
    }
    const type = schema["type"];
    if (Array.isArray(type)) {
      if (type.length === 0) this.fail(`${path}/type`, "is an empty list");
      for (const entry of type) {
        if (typeof entry !== "string" || !PRIMITIVE_TYPES.has(entry)) {
          this.fail(`${path}/type`, `lists ${JSON.stringify(entry)}; a list of types may only name string, number, integer, boolean and null`);
        }
      }
      return "primitive";
    }
    if (typeof type !== "string" || !ALL_TYPES.has(type)) this.fail(`${path}/type`, `is ${JSON.stringify(type)}, not a JSON schema type`);
    if (type === "object" || type === "array" || type === "string") return type;
    return "primitive";
  }

  private collectDefs(schema: Json, path: string, inherited: ReadonlySet<string>): { scope: Set<string> } | undefined {
    if (!("$defs" in schema)) return undefined;
    const defs = schema["$defs"];
    if (typeof defs !== "object" || defs === null || Array.isArray(defs)) this.fail(`${path}/$defs`, "must be an object");
    return { scope: new Set([...inherited, ...Object.keys(defs)]) };
  }

  private walkDefs(defs: Json, path: string, depth: number, scope: ReadonlySet<string>): Json {
    const out: Json = {};
    for (const [name, def] of Object.entries(defs)) out[name] = this.walk(def, `${path}/$defs/${name}`, depth + 1, scope);
    return out;
  }

  private checkRef(ref: unknown, path: string, scope: ReadonlySet<string>): string {
    const prefix = "#/$defs/";
    if (typeof ref !== "string" || !ref.startsWith(prefix)) this.fail(`${path}/$ref`, `must point into "${prefix}"`);
    const name = ref.slice(prefix.length);
    if (!scope.has(name)) this.fail(`${path}/$ref`, `points to "${ref}", which is not defined`);
    return ref;
  }

  private literal(value: unknown, path: string): string | number | boolean | null {
    if (value === null || typeof value === "string" || typeof value === "boolean" || (typeof value === "number" && Number.isFinite(value))) return value;
    return this.fail(path, "must be a string, number, boolean or null");
  }

  private enumValues(values: unknown, path: string): (string | number | boolean | null)[] {
    if (!Array.isArray(values) || values.length === 0) this.fail(`${path}/enum`, "must be a non-empty list");
    return values.map((value, index) => this.literal(value, `${path}/enum/${index}`));
  }

  private alternatives(schema: Json, path: string, depth: number, scope: ReadonlySet<string>): Json[] {
    if ("oneOf" in schema && "anyOf" in schema) this.fail(path, 'combines "oneOf" and "anyOf"');
    const key = "oneOf" in schema ? "oneOf" : "anyOf";
    const list = schema[key];
    if (!Array.isArray(list) || list.length === 0) this.fail(`${path}/${key}`, "must be a non-empty list of schemas");
    return list.map((entry, index) => this.walk(entry, `${path}/${key}/${index}`, depth + 1, scope));
  }

  private objectKeywords(schema: Json, path: string, depth: number, scope: ReadonlySet<string>): Json {
    const out: Json = { type: "object" };
    const properties = schema["properties"];
    if (properties !== undefined) {
      if (typeof properties !== "object" || properties === null || Array.isArray(properties)) this.fail(`${path}/properties`, "must be an object");
      const walked: Json = {};
      for (const [name, value] of Object.entries(properties)) walked[name] = this.walk(value, `${path}/properties/${name}`, depth + 1, scope);
      out["properties"] = walked;
    }
    const required = schema["required"];
    if (required !== undefined) {
      if (!Array.isArray(required) || !required.every((entry) => typeof entry === "string")) this.fail(`${path}/required`, "must be a list of property names");
      const known = new Set(Object.keys((out["properties"] as Json | undefined) ?? {}));
      const unknown = required.find((name) => !known.has(name));
      // A required property that is not described cannot be generated by the grammar.
      if (unknown !== undefined) this.fail(`${path}/required`, `requires "${unknown}", which is not in "properties"`);
      out["required"] = required;
    }
    const additional = schema["additionalProperties"];
    if (additional !== undefined) {
      out["additionalProperties"] = typeof additional === "boolean" ? additional : this.walk(additional, `${path}/additionalProperties`, depth + 1, scope);
    }
    for (const key of ["minProperties", "maxProperties"]) {
      if (key in schema) out[key] = this.count(schema[key], `${path}/${key}`);
    }
    return out;
  }

  private arrayKeywords(schema: Json, path: string, depth: number, scope: ReadonlySet<string>): Json {
    const out: Json = { type: "array" };
    if (schema["items"] !== undefined) {
      if (typeof schema["items"] === "boolean") this.fail(`${path}/items`, "must be a schema object");
      out["items"] = this.walk(schema["items"], `${path}/items`, depth + 1, scope);
    }
    const prefixItems = schema["prefixItems"];
    if (prefixItems !== undefined) {
      if (!Array.isArray(prefixItems)) this.fail(`${path}/prefixItems`, "must be a list of schemas");
      out["prefixItems"] = prefixItems.map((entry, index) => this.walk(entry, `${path}/prefixItems/${index}`, depth + 1, scope));
    }
    for (const key of ["minItems", "maxItems"]) {
      if (key in schema) out[key] = this.count(schema[key], `${path}/${key}`);
    }
    return out;
  }

  private stringKeywords(schema: Json, path: string): Json {
    const out: Json = { type: "string" };
    if ("format" in schema) {
      const format = schema["format"];
      if (typeof format !== "string" || !STRING_FORMATS.has(format)) {
        this.fail(`${path}/format`, `is ${JSON.stringify(format)}; only date-time, time and date can be enforced`);
      }
      if ("minLength" in schema || "maxLength" in schema) this.fail(path, 'combines "format" with a length limit');
      out["format"] = format;
    }
    for (const key of ["minLength", "maxLength"]) {
      if (key in schema) out[key] = this.count(schema[key], `${path}/${key}`);
    }
    return out;
  }

  private count(value: unknown, path: string): number {
    if (typeof value !== "number" || !Number.isInteger(value) || value < 0) this.fail(path, "must be an integer >= 0");
    return value;
  }

  private fail(path: string, problem: string): never {
    throw errors.unsupportedSchema(`The JSON schema at ${path} ${problem}.`, { param: this.param });
  }
}
