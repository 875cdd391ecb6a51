import http from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { DONE_FRAME, formatDataFrame, KEEPALIVE_FRAME, SseWriter } from "../../daemon/http/SseWriter.js";
import { NdjsonWriter } from "../../daemon/http/streamWriters.js";

let server: http.Server | undefined;

afterEach(async () => {
  const running = server;
  server = undefined;
  if (running === undefined) return;
  running.closeAllConnections();
  await new Promise((resolve) => running.close(resolve));
});

/** Starts a real server whose only handler is `script`, and returns its URL. */
async function serve(script: (res: http.ServerResponse) => Promise<void> | void): Promise<string> {
  server = http.createServer((_req, res) => {
    void script(res);
  });
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
}

describe("SSE framing", () => {
  it("frames JSON and raw strings as data lines with a blank line after", () => {
    expect(formatDataFrame({ a: 1 })).toBe('data: {"a":1}\n\n');
    expect(formatDataFrame("[DONE]")).toBe("data: [DONE]\n\n");
    expect(DONE_FRAME).toBe("data: [DONE]\n\n");
    expect(KEEPALIVE_FRAME.startsWith(":")).toBe(true);
  });

  it("keeps a JSON payload with newlines on one data line", () => {
    expect(formatDataFrame({ text: "a\nb" }).split("\n")).toEqual(['data: {"text":"a\\nb"}', "", ""]);
  });
});

describe("SseWriter over a real socket", () => {
  it("sends event-stream headers, data frames and [DONE]", async () => {
    const url = await serve((res) => {
      const sse = new SseWriter(res, 10_000);
      sse.send({ data: { n: 1 } });
      sse.send({ data: { n: 2 } });
      sse.done();
    });
    const response = await fetch(url);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    expect(response.headers.get("cache-control")).toBe("no-cache");
    expect(await response.text()).toBe('data: {"n":1}\n\ndata: {"n":2}\n\ndata: [DONE]\n\n');
  });

  it("sends keepalive comments while waiting, and the headers with the first one", async () => {
    const url = await serve(async (res) => {
      const sse = new SseWriter(res, 30);
      sse.startKeepAlive();
      await sleep(200);
      sse.send({ data: { late: true } });
      sse.done();
    });
    const started = Date.now();
    const response = await fetch(url);
    // Headers arrived with the first keepalive, long before the data.
    expect(Date.now() - started).toBeLessThan(180);
    const text = await response.text();
    const keepalives = text.split(KEEPALIVE_FRAME).length - 1;
    expect(keepalives).toBeGreaterThanOrEqual(2);
    expect(text.endsWith('data: {"late":true}\n\ndata: [DONE]\n\n')).toBe(true);
    expect(text.replaceAll(KEEPALIVE_FRAME, "")).toBe('data: {"late":true}\n\ndata: [DONE]\n\n');
  });

  it("commits nothing until something is written, so an early failure can still set the status", async () => {
    const url = await serve(async (res) => {
      const sse = new SseWriter(res, 10_000);
      sse.startKeepAlive();
      await sleep(20);
      expect(sse.started).toBe(false);
      sse.dispose();
      res.writeHead(429, { "content-type": "application/json" });
      res.end('{"error":{}}');
    });
    const response = await fetch(url);
    expect(response.status).toBe(429);
  });

  it("ends a failed stream with one error frame and no [DONE]", async () => {
    const url = await serve((res) => {
      const sse = new SseWriter(res, 10_000);
      sse.send({ data: { n: 1 } });
      sse.fail({ data: { error: { message: "runner died", code: "HEARTH_RUNNER_CRASHED" } } });
      sse.send({ data: { n: 2 } });
    });
    const text = await (await fetch(url)).text();
    expect(text).toBe('data: {"n":1}\n\ndata: {"error":{"message":"runner died","code":"HEARTH_RUNNER_CRASHED"}}\n\n');
  });

  it("ignores writes after the client went away", async () => {
    let finished: (value: unknown) => void = () => {};
    const outcome = new Promise((resolve) => (finished = resolve));
    const url = await serve((res) => {
      const sse = new SseWriter(res, 5);
      sse.send({ data: { n: 1 } });
      sse.startKeepAlive();
      res.once("close", () => {
        try {
          sse.send({ data: { n: 2 } });
          sse.done();
          finished("ok");
        } catch (error) {
          finished(error);
        }
      });
    });
    const controller = new AbortController();
    const response = await fetch(url, { signal: controller.signal });
    const reader = response.body!.getReader();
    await reader.read();
    controller.abort();
    expect(await outcome).toBe("ok");
  });
});

describe("NdjsonWriter over a real socket", () => {
  it("sends one JSON object per line with NDJSON headers, and an error line when it fails", async () => {
    const url = await serve((res) => {
      const stream = new NdjsonWriter(res);
      stream.send({ data: { n: 1 } });
      stream.fail({ data: { error: "runner died" } });
      stream.send({ data: { n: 2 } });
    });
    const response = await fetch(url);
    expect(response.headers.get("content-type")).toBe("application/x-ndjson");
    expect(await response.text()).toBe('{"n":1}\n{"error":"runner died"}\n');
  });

  it("names SSE events for the families that name them", () => {
    expect(formatDataFrame({ type: "ping" }, "ping")).toBe('event: ping\ndata: {"type":"ping"}\n\n');
  });
});
