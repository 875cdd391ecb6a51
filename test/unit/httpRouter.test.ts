import { describe, expect, it } from "vitest";
import { createRouter } from "../../daemon/http/HttpApi.js";
import { requestPath, Router } from "../../daemon/http/router.js";

const noop = (): Promise<void> => Promise.resolve();

describe("Router", () => {
  const router = new Router().add("GET", "/v1/models", noop).add("GET", "/v1/models/:id", noop).add("POST", "/v1/chat/completions", noop);

  it("finds a route by method and path", () => {
    expect(router.match("GET", "/v1/models")).toMatchObject({ kind: "found", name: "/v1/models", method: "GET", params: {} });
  });

  it("percent-decodes path parameters", () => {
    expect(router.match("GET", "/v1/models/org%2Fmy%20model")).toMatchObject({ kind: "found", name: "/v1/models/{id}", params: { id: "org/my model" } });
  });

  it("does not match an empty or undecodable parameter", () => {
    expect(router.match("GET", "/v1/models/").kind).toBe("notFound");
    expect(router.match("GET", "/v1/models/%E0%A4%A").kind).toBe("notFound");
  });

  it("tells a wrong method apart from a missing path", () => {
    expect(router.match("GET", "/v1/chat/completions")).toEqual({ kind: "methodNotAllowed", name: "/v1/chat/completions", allow: ["POST"] });
    expect(router.match("POST", "/v1/nothing")).toEqual({ kind: "notFound" });
    expect(router.match("GET", "/v1/models/a/b")).toEqual({ kind: "notFound" });
  });

  it("serves HEAD through the GET route", () => {
    expect(router.match("HEAD", "/v1/models")).toMatchObject({ kind: "found", method: "GET" });
    expect(router.match("HEAD", "/v1/chat/completions").kind).toBe("methodNotAllowed");
  });

  it("rejects targets that are not origin-form paths", () => {
    expect(router.match("GET", "http://evil/v1/models").kind).toBe("notFound");
    expect(router.match("GET", "*").kind).toBe("notFound");
  });
});

describe("requestPath", () => {
  it("strips the query string", () => {
    expect(requestPath("/v1/models?limit=1")).toBe("/v1/models");
    expect(requestPath("/health")).toBe("/health");
    expect(requestPath(undefined)).toBe("/");
  });
});

describe("the API's route table", () => {
  const api = createRouter();

  it.each([
    ["GET", "/health"],
    ["GET", "/metrics"],
    ["GET", "/v1/models"],
    ["GET", "/v1/models/tiny"],
    ["POST", "/v1/chat/completions"],
    ["POST", "/v1/completions"],
    ["POST", "/v1/embeddings"],
    ["GET", "/hearth/v1/status"],
  ])("serves %s %s", (method, path) => {
    expect(api.match(method, path).kind).toBe("found");
  });

  it("answers 405 material for POST /v1/models and GET /v1/embeddings", () => {
    expect(api.match("POST", "/v1/models")).toMatchObject({ kind: "methodNotAllowed", allow: ["GET"] });
    expect(api.match("GET", "/v1/embeddings")).toMatchObject({ kind: "methodNotAllowed", allow: ["POST"] });
  });
});
