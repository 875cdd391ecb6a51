/**
 * Maps a method and path onto a handler, and tells "no such path" (404) apart from "path
 * exists, wrong method" (405 with the allowed methods).
 *
 * HEAD is served by the GET route of the same path.
 *
 * Patterns are literal segments plus `:name` segments matching exactly one non-empty path
 * segment, percent-decoded. A segment that does not decode is not a match.
 */

import type { Handler } from "./context.js";

export type HttpMethod = "GET" | "POST" | "DELETE";

interface Route {
  method: HttpMethod;
  segments: string[];
  /** Stable label for logs and metrics, e.g. "/v1/models/{id}". */
  name: string;
  handler: Handler;
}

export type RouteMatch =
  | { kind: "found"; name: string; method: HttpMethod; handler: Handler; params: Record<string, string> }
  | { kind: "methodNotAllowed"; name: string; allow: HttpMethod[] }
  | { kind: "notFound" };

function splitPath(path: string): string[] {
  return path.split("/").slice(1);
}

function matchSegments(pattern: readonly string[], actual: readonly string[]): Record<string, string> | undefined {
  if (pattern.length !== actual.length) return undefined;
  const params: Record<string, string> = {};
  for (const [index, expected] of pattern.entries()) {
    const segment = actual[index] ?? "";
    if (expected.startsWith(":")) {
      if (segment === "") return undefined;
      try {
        params[expected.slice(1)] = decodeURIComponent(segment);
      } catch {
        return undefined;
      }
    } else if (expected !== segment) {
      return undefined;
    }
  }
  return params;
}

export class Router {
  private readonly routes: Route[] = [];

  add(method: HttpMethod, pattern: string, handler: Handler): this {
    const segments = splitPath(pattern);
    const name = segments.map((segment) => (segment.startsWith(":") ? `{${segment.slice(1)}}` : segment)).join("/");
    this.routes.push({ method, segments, name: `/${name}`, handler });
    return this;
  }

  /** `path` is the request path without its query string. */
  match(method: string, path: string): RouteMatch {
    if (!path.startsWith("/")) return { kind: "notFound" };
    const actual = splitPath(path);
    const allow: HttpMethod[] = [];
    let name: string | undefined;
    for (const route of this.routes) {
      const params = matchSegments(route.segments, actual);
      if (params === undefined) continue;
      // HEAD is GET without a body; node:http drops the body itself.
      if (route.method === method || (method === "HEAD" && route.method === "GET")) return { kind: "found", name: route.name, method: route.method, handler: route.handler, params };
      allow.push(route.method);
      name ??= route.name;
    }
    if (name !== undefined) return { kind: "methodNotAllowed", name, allow };
    return { kind: "notFound" };
  }
}

/** The path part of a request target (`/v1/models?x=1` → `/v1/models`). */
export function requestPath(url: string | undefined): string {
  const target = url ?? "/";
  const query = target.indexOf("?");
  return query === -1 ? target : target.slice(0, query);
}
