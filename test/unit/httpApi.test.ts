/**
 * HttpApi's request pipeline over real sockets: guards, routing, body handling, readiness
 * and lifecycle. The engine here throws on every call, which proves that rejected requests
 * are rejected before any work reaches it. Inference itself is covered by
 * test/integration/httpApi.test.ts with the real engine.
 */

import http from "node:http";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { DEFAULT_LIMITS, type HearthConfig } from "../../daemon/config/defaults.js";
import * as defaults from "../../daemon/config/defaults.js";
import type { InferenceEngine } from "../../daemon/engine/types.js";
import { HttpApi } from "../../daemon/http/HttpApi.js";
import { Metrics } from "../../daemon/metrics/Metrics.js";
import { testConfig, type TestConfigOverrides } from "../support/config.js";

const untouchableEngine: InferenceEngine = {
  listModels: () => Promise.reject(new Error("engine must not be reached")),
  resolveModel: () => Promise.reject(new Error("engine must not be reached")),
  generate: () => Promise.reject(new Error("engine must not be reached")),
  embed: () => Promise.reject(new Error("engine must not be reached")),
  stats: () => ({ loaded: [] }),
};

/** Nothing here runs a model or reads a file: the dirs do not exist. */
function config(overrides: TestConfigOverrides = {}): HearthConfig {
  return testConfig(defaults, "/nonexistent", { modelsDir: "/nonexistent", limits: { maxBodyBytes: 64 * 1024 }, runner: { threads: 1, gpuLayers: 0, loadTimeoutMs: 60_000, stopTimeoutMs: 2_000 }, ...overrides });
}

let api: HttpApi | undefined;

afterEach(async () => {
  await api?.close();
  api = undefined;
});

async function start(overrides: TestConfigOverrides = {}, engine: InferenceEngine = untouchableEngine): Promise<{ port: number; metrics: Metrics }> {
  const metrics = new Metrics({ stats: () => engine.stats() });
  api = new HttpApi({ config: config(overrides), engine, metrics, logger: pino({ level: "silent" }), version: "9.9.9" });
  const { port } = await api.listen();
  return { port, metrics };
}

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** node:http lets a test set any Host header, which fetch does not. */
function request(port: number, options: { method?: string; path: string; headers?: Record<string, string>; body?: string | Buffer }): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: "127.0.0.1", port, method: options.method ?? "GET", path: options.path, headers: options.headers ?? {}, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(options.body);
  });
}

function errorOf(response: RawResponse): { code: string; param: string | null; type: string; message: string } {
  return (JSON.parse(response.body) as { error: { code: string; param: string | null; type: string; message: string } }).error;
}

const json = { "content-type": "application/json" };

describe("HttpApi lifecycle", () => {
  it("reports the real port when configured with port 0", async () => {
    const { port } = await start();
    expect(port).toBeGreaterThan(0);
    expect((await request(port, { path: "/health" })).status).toBe(200);
  });

  it("health follows readiness", async () => {
    const { port } = await start();
    expect(JSON.parse((await request(port, { path: "/health" })).body)).toEqual({ status: "ok" });
    api!.setReady(false);
    expect((await request(port, { path: "/health" })).status).toBe(503);
    api!.setReady(true);
    expect((await request(port, { path: "/health" })).status).toBe(200);
  });

  it("answers new inference requests with 503 and retry-after while not ready", async () => {
    const { port } = await start();
    api!.setReady(false);
    const response = await request(port, { method: "POST", path: "/v1/chat/completions", headers: json, body: "{}" });
    expect(response.status).toBe(503);
    expect(response.headers["retry-after"]).toBe(String(DEFAULT_LIMITS.retryAfterSeconds));
    expect(errorOf(response).code).toBe("HEARTH_SHUTTING_DOWN");
  });

  it("close() ends idle keep-alive connections and stops accepting", async () => {
    const { port } = await start();
    const agent = new http.Agent({ keepAlive: true });
    await new Promise<void>((resolve, reject) => {
      http.get({ host: "127.0.0.1", port, path: "/health", agent }, (res) => {
        res.resume();
        res.on("end", resolve);
      }).on("error", reject);
    });
    const started = Date.now();
    await api!.close();
    expect(Date.now() - started).toBeLessThan(1_000);
    api = undefined;
    await expect(request(port, { path: "/health" })).rejects.toThrow(/ECONNREFUSED/);
    agent.destroy();
  });

  it("reports its status", async () => {
    const { port } = await start();
    const status = JSON.parse((await request(port, { path: "/hearth/v1/status" })).body);
    expect(status).toEqual({ version: "9.9.9", uptimeSeconds: expect.any(Number), listen: { host: "127.0.0.1", port }, models: [] });
  });
});

describe("HttpApi routing", () => {
  it("answers unknown paths with 404 HEARTH_NOT_FOUND", async () => {
    const { port } = await start();
    const response = await request(port, { path: "/nope" });
    expect(response.status).toBe(404);
    expect(errorOf(response)).toMatchObject({ code: "HEARTH_NOT_FOUND", type: "not_found_error" });
  });

  it("answers a wrong method with 405 and an Allow header", async () => {
    const { port } = await start();
    const response = await request(port, { method: "DELETE", path: "/v1/models" });
    expect(response.status).toBe(405);
    expect(response.headers.allow).toBe("GET");
    expect(errorOf(response).code).toBe("HEARTH_METHOD_NOT_ALLOWED");
    const post = await request(port, { method: "GET", path: "/v1/chat/completions" });
    expect(post.headers.allow).toBe("POST");
  });

  it("ignores the query string when routing", async () => {
    const { port } = await start();
    expect((await request(port, { path: "/health?verbose=1" })).status).toBe(200);
  });
});

describe("HttpApi Host check", () => {
  it("rejects a foreign Host with 403 before anything else", async () => {
    const { port } = await start();
    for (const host of ["evil.example", `evil.example:${port}`, "127.0.0.1.nip.io"]) {
      const response = await request(port, { path: "/v1/models", headers: { host } });
      expect(response.status).toBe(403);
      expect(errorOf(response).code).toBe("HEARTH_FORBIDDEN_HOST");
    }
  });

  it("accepts loopback names with and without port, and configured names", async () => {
    const { port } = await start({ allowedHosts: ["hearth.home.arpa"] });
    for (const host of ["localhost", `localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, "hearth.home.arpa:4327"]) {
      expect((await request(port, { path: "/health", headers: { host } })).status).toBe(200);
    }
  });
});

describe("HttpApi API key", () => {
  const apiKey = "correct horse battery staple";

  it("requires the key on /v1, /hearth and /metrics", async () => {
    const { port } = await start({ apiKey });
    for (const path of ["/v1/models", "/hearth/v1/status", "/metrics", "/v1/does-not-exist"]) {
      const response = await request(port, { path });
      expect(response.status).toBe(401);
      expect(response.headers["www-authenticate"]).toMatch(/^Bearer/);
      expect(errorOf(response)).toMatchObject({ code: "HEARTH_UNAUTHORIZED", type: "authentication_error" });
      expect(response.body).not.toContain(apiKey);
    }
  });

  it("rejects a wrong key and accepts the right one", async () => {
    const { port } = await start({ apiKey });
    expect((await request(port, { path: "/metrics", headers: { authorization: "Bearer wrong" } })).status).toBe(401);
    expect((await request(port, { path: "/metrics", headers: { authorization: `Bearer ${apiKey}` } })).status).toBe(200);
    expect((await request(port, { path: "/hearth/v1/status", headers: { authorization: `bearer ${apiKey}` } })).status).toBe(200);
  });

  it("leaves /health open", async () => {
    const { port } = await start({ apiKey });
    expect((await request(port, { path: "/health" })).status).toBe(200);
  });
});

describe("HttpApi request bodies", () => {
  const chat = { method: "POST", path: "/v1/chat/completions" };

  it("answers 415 for a non-JSON content type", async () => {
    const { port } = await start();
    const response = await request(port, { ...chat, headers: { "content-type": "application/x-www-form-urlencoded" }, body: "a=1" });
    expect(response.status).toBe(415);
    expect(errorOf(response).code).toBe("HEARTH_UNSUPPORTED_MEDIA_TYPE");
  });

  it("answers 400 HEARTH_INVALID_JSON for malformed JSON", async () => {
    const { port } = await start();
    const response = await request(port, { ...chat, headers: json, body: '{"model": "x",' });
    expect(response.status).toBe(400);
    expect(errorOf(response).code).toBe("HEARTH_INVALID_JSON");
  });

  it("answers 400 for a JSON body that is not an object", async () => {
    const { port } = await start();
    const response = await request(port, { ...chat, headers: json, body: "[1,2]" });
    expect(response.status).toBe(400);
    expect(errorOf(response).code).toBe("HEARTH_INVALID_REQUEST");
  });

  it("answers 400 with param for schema violations without touching the engine", async () => {
    const { port } = await start();
    const cases: [unknown, string][] = [
      [{ model: "x", messages: [{ role: "wizard", content: "hi" }] }, "messages[0].role"],
      [{ model: "x", messages: [{ role: "user", content: "hi" }], max_tokens: -1 }, "max_tokens"],
      [{ model: "x", messages: [{ role: "user", content: "hi" }], max_tokens: 1e12 }, "max_tokens"],
      [{ model: 5, messages: [] }, "model"],
    ];
    for (const [body, param] of cases) {
      const response = await request(port, { ...chat, headers: json, body: JSON.stringify(body) });
      expect(response.status).toBe(400);
      expect(errorOf(response)).toMatchObject({ code: "HEARTH_INVALID_REQUEST", param, type: "invalid_request_error" });
    }
    const embeddings = await request(port, { method: "POST", path: "/v1/embeddings", headers: json, body: JSON.stringify({ model: "x", input: "" }) });
    expect(errorOf(embeddings).param).toBe("input");
    const completions = await request(port, { method: "POST", path: "/v1/completions", headers: json, body: JSON.stringify({ model: "x", prompt: [1, 2] }) });
    expect(errorOf(completions).param).toBe("prompt");
  });

  it("answers 413 for a body over the limit (declared or streamed) and keeps serving", async () => {
    const { port } = await start();
    const huge = Buffer.alloc(8 * 1024 * 1024, 0x20);
    const declared = await request(port, { ...chat, headers: json, body: huge });
    expect(declared.status).toBe(413);
    expect(errorOf(declared).code).toBe("HEARTH_BODY_TOO_LARGE");
    const chunked = await new Promise<number>((resolve, reject) => {
      const req = http.request({ host: "127.0.0.1", port, method: "POST", path: chat.path, headers: { ...json, "transfer-encoding": "chunked" }, agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      for (let i = 0; i < 8; i++) req.write(Buffer.alloc(64 * 1024, 0x20));
      req.end();
    });
    expect(chunked).toBe(413);
    expect((await request(port, { path: "/health" })).status).toBe(200);
  });

  it("answers an internal error as a generic 500 without leaking the message", async () => {
    const { port } = await start();
    const response = await request(port, { path: "/v1/models" });
    expect(response.status).toBe(500);
    expect(errorOf(response)).toMatchObject({ code: "HEARTH_INTERNAL", type: "server_error" });
    expect(response.body).not.toContain("engine must not be reached");
  });

  it("survives malformed HTTP", async () => {
    const { port } = await start();
    const net = await import("node:net");
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(port, "127.0.0.1", () => socket.write("GARBAGE / HTTP/9.9\r\n\r\n"));
      let data = "";
      socket.on("data", (chunk) => (data += chunk.toString()));
      socket.on("end", () => resolve(data));
      socket.on("error", reject);
    });
    expect(reply).toMatch(/^HTTP\/1\.1 400/);
    expect((await request(port, { path: "/health" })).status).toBe(200);
  });
});

describe("HttpApi metrics", () => {
  it("counts answered requests by route and status", async () => {
    const { port } = await start();
    await request(port, { path: "/health" });
    await request(port, { path: "/nope" });
    await request(port, { method: "POST", path: "/v1/chat/completions", headers: json, body: "{" });
    const response = await request(port, { path: "/metrics" });
    expect(response.headers["content-type"]).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(response.body).toContain('hearth_http_requests_total{endpoint="/health",status="200"} 1');
    expect(response.body).toContain('hearth_http_requests_total{endpoint="unmatched",status="404"} 1');
    expect(response.body).toContain('hearth_http_requests_total{endpoint="/v1/chat/completions",status="400"} 1');
  });
});
