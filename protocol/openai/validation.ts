/**
 * Turns a zod validation failure into the one HearthError a client sees.
 *
 * OpenAI clients branch on `error.param`, so every rejection names the offending field as
 * a path in OpenAI's own notation (`messages[0].content[1].type`), and the message says what
 * was expected and what arrived. Only the first issue is reported: that is what OpenAI does,
 * and it keeps messages short.
 *
 * Pure: no I/O.
 */

import type { z } from "zod";
import type { HearthError } from "../errors.js";
import { errors } from "../errors.js";

type Issue = z.core.$ZodIssue;
type PathSegment = PropertyKey;

/** `["messages", 0, "role"]` → `messages[0].role`; the empty path (the body itself) → null. */
export function formatParamPath(path: readonly PathSegment[]): string | null {
  let out = "";
  for (const segment of path) {
    if (typeof segment === "number") out += `[${segment}]`;
    else out += out === "" ? String(segment) : `.${String(segment)}`;
  }
  return out === "" ? null : out;
}

/** A short, JSON-ish description of a received value for error messages. */
export function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  switch (typeof value) {
    case "string":
      return value.length > 40 ? `a string` : `'${value}'`;
    case "number":
      return Number.isFinite(value) ? String(value) : "a non-finite number";
    case "boolean":
      return String(value);
    case "object":
      return "an object";
    default:
      return typeof value;
  }
}

const TYPE_NAMES: Record<string, string> = {
  int: "an integer",
  number: "a number",
  string: "a string",
  boolean: "a boolean",
  object: "an object",
  record: "an object",
  array: "an array",
};

function quoteList(values: readonly unknown[]): string {
  return values.map((value) => (typeof value === "string" ? `'${value}'` : String(value))).join(", ");
}

function bound(issue: { inclusive?: boolean }, strictWord: string, inclusiveWord: string): string {
  return issue.inclusive === false ? strictWord : inclusiveWord;
}

/** A phrase (without the param name) saying what is wrong with the value. */
function describeIssue(issue: Issue): string {
  const input = (issue as { input?: unknown }).input;
  switch (issue.code) {
    case "custom":
      return issue.message;
    case "invalid_type":
      return `expected ${TYPE_NAMES[issue.expected] ?? issue.expected}, got ${describeValue(input)}`;
    case "invalid_value":
      return issue.values.length === 1
        ? `expected ${quoteList(issue.values)}, got ${describeValue(input)}`
        : `expected one of ${quoteList(issue.values)}, got ${describeValue(input)}`;
    case "too_small":
      if (issue.origin === "array") return `must have at least ${String(issue.minimum)} item(s)`;
      if (issue.origin === "string") return `must be at least ${String(issue.minimum)} character(s) long`;
      return `must be ${bound(issue, "greater than", "at least")} ${String(issue.minimum)}, got ${describeValue(input)}`;
    case "too_big":
      if (issue.origin === "array") return `must have at most ${String(issue.maximum)} item(s)`;
      if (issue.origin === "string") return `must be at most ${String(issue.maximum)} character(s) long`;
      return `must be ${bound(issue, "less than", "at most")} ${String(issue.maximum)}, got ${describeValue(input)}`;
    case "invalid_format":
      return issue.format === "regex" && "pattern" in issue ? `must match the pattern ${String(issue.pattern)}` : `must be a valid ${issue.format}`;
    case "invalid_union": {
      const discriminated = issue as Issue & { discriminator?: string; options?: unknown[] };
      if (discriminated.discriminator !== undefined && discriminated.options !== undefined) {
        const value = typeof input === "object" && input !== null ? (input as Record<string, unknown>)[discriminated.discriminator] : undefined;
        return `expected one of ${quoteList(discriminated.options)}, got ${describeValue(value)}`;
      }
      return "does not match any accepted form";
    }
    default:
      return issue.message;
  }
}

/** The value the issue is about is absent (as opposed to present with a bad value). */
function isMissing(issue: Issue): boolean {
  const input = (issue as { input?: unknown }).input;
  if (issue.code === "invalid_type") return input === undefined;
  if (issue.code === "invalid_union") {
    const discriminated = issue as Issue & { discriminator?: string };
    if (discriminated.discriminator === undefined) return input === undefined;
    return typeof input === "object" && input !== null && (input as Record<string, unknown>)[discriminated.discriminator] === undefined;
  }
  return false;
}

export function issueToHearthError(issue: Issue): HearthError {
  const discriminator = issue.code === "invalid_union" ? (issue as { discriminator?: string }).discriminator : undefined;
  // Zod reports a bad discriminator at the union's own path; OpenAI names the field itself.
  const path = discriminator !== undefined && issue.path[issue.path.length - 1] !== discriminator ? [...issue.path, discriminator] : issue.path;
  const param = formatParamPath(path);
  const where = param ?? "request body";
  const message = isMissing(issue) ? `Missing required parameter: '${where}'.` : `Invalid value for '${where}': ${describeIssue(issue)}.`;
  return errors.invalidRequest(message, { param });
}

/**
 * Parses `body` with `schema`, throwing HEARTH_INVALID_REQUEST for the first issue. Unknown
 * fields are dropped by the schemas (z.object strips), so newer client fields never fail.
 */
export function parseWith<T extends z.ZodType>(schema: T, body: unknown): z.output<T> {
  const result = schema.safeParse(body, { reportInput: true });
  if (result.success) return result.data;
  const first = result.error.issues[0];
  if (first === undefined) throw errors.invalidRequest("The request is invalid.");
  throw issueToHearthError(first);
}

/** Adds a custom issue at a path relative to the value being checked. */
export function addIssue(ctx: z.core.$RefinementCtx, message: string, path: PathSegment[] = []): void {
  ctx.addIssue({ code: "custom", message, path });
}
