import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HearthError } from "../../protocol/errors.js";
import { isJsonContentType, parseJsonObject, readJsonBody } from "../../daemon/http/requestBody.js";

const MAX = 1024;

// A real server whose handler reports what readJsonBody made of the request.
let server: http.Server;
let url: string;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    readJsonBody(req, { maxBytes: MAX }).then(
      (body) => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ body }));
      },
      (error: unknown) => {
        const code = error instanceof HearthError ? error.code : "other";
        res.writeHead(error instanceof HearthError ? error.status : 500, { "content-type": "application/json", connection: "close" });
        res.end(JSON.stringify({ code }));
      },
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

async function post(body: string, contentType: string | undefined): Promise<{ status: number; json: { body?: unknown; code?: string } }> {
  const headers: Record<string, string> = {};
  if (contentType !== undefined) headers["content-type"] = contentType;
  const response = await fetch(url, { method: "POST", headers, body });
  return { status: response.status, json: (await response.json()) as { body?: unknown; code?: string } };
}

describe("content type", () => {
  it.each(["application/json", "application/json; charset=utf-8", "Application/JSON", "application/merge-patch+json"])("accepts %s", (type) => {
    expect(isJsonContentType(type)).toBe(true);
  });

  it.each([undefined, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "application/jsonx"])("rejects %s", (type) => {
    expect(isJsonContentType(type)).toBe(false);
  });
});

describe("parseJsonObject", () => {
  const fail = (bytes: Uint8Array): string => {
    try {
      parseJsonObject(bytes);
    } catch (error) {
      return (error as HearthError).code;
    }
    return "none";
  };

  it("parses an object", () => {
    expect(parseJsonObject(Buffer.from('{"a":[1,2]}'))).toEqual({ a: [1, 2] });
  });

  it("tolerates a UTF-8 byte order mark", () => {
    expect(parseJsonObject(Buffer.from('\uFEFF{"a":1}'))).toEqual({ a: 1 });
  });

  it("rejects empty, malformed and non-UTF-8 bodies as invalid JSON", () => {
    expect(fail(Buffer.from(""))).toBe("HEARTH_INVALID_JSON");
    expect(fail(Buffer.from("{"))).toBe("HEARTH_INVALID_JSON");
    expect(fail(Buffer.from("{'a':1}"))).toBe("HEARTH_INVALID_JSON");
    expect(fail(Buffer.from([0x7b, 0xff, 0x7d]))).toBe("HEARTH_INVALID_JSON");
  });

  it("rejects JSON that is not an object as an invalid request", () => {
    for (const text of ["[]", "null", "3", '"x"', "true"]) expect(fail(Buffer.from(text))).toBe("HEARTH_INVALID_REQUEST");
  });

  it("keeps __proto__ as plain data", () => {
    const parsed = parseJsonObject(Buffer.from('{"__proto__":{"polluted":true}}'));
    expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined();
    expect(Object.hasOwn(parsed, "__proto__")).toBe(true);
  });
});

describe("readJsonBody over a real socket", () => {
  it("reads a JSON body", async () => {
    expect(await post('{"model":"x"}', "application/json")).toEqual({ status: 200, json: { body: { model: "x" } } });
  });

  it("answers 415 for other content types", async () => {
    expect(await post('{"model":"x"}', "text/plain")).toEqual({ status: 415, json: { code: "HEARTH_UNSUPPORTED_MEDIA_TYPE" } });
  });

  it("answers 413 from Content-Length before reading", async () => {
    const result = await post(JSON.stringify({ pad: "x".repeat(MAX) }), "application/json");
    expect(result).toEqual({ status: 413, json: { code: "HEARTH_BODY_TOO_LARGE" } });
  });

  it("answers 413 for a chunked body that grows past the limit", async () => {
    const chunks = [Buffer.from('{"pad":"'), Buffer.alloc(MAX * 4, 0x61), Buffer.from('"}')];
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const chunk of chunks) controller.enqueue(chunk);
        controller.close();
      },
    });
    const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: stream, duplex: "half" });
    expect(response.status).toBe(413);
    expect(await response.json()).toEqual({ code: "HEARTH_BODY_TOO_LARGE" });
  });

  it("accepts a body of exactly the limit", async () => {
    const body = JSON.stringify({ pad: "" });
    const padded = JSON.stringify({ pad: "y".repeat(MAX - body.length) });
    expect(Buffer.byteLength(padded)).toBe(MAX);
    expect((await post(padded, "application/json")).status).toBe(200);
  });
});
