// CLI building blocks: exit codes, error lines, formatting, model URI validation, the
// daemon client (target resolution, SSE parsing, error mapping, answers checked against their
// contract) against a real local server, and the program acting on the machine it is handed.

import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { z } from "zod";
import { HearthError } from "../../protocol/errors.js";
import { DaemonClient, resolveDaemonTarget } from "../../cli/client.js";
import { localMachine } from "../../daemon/commands/index.js";
import { parseModelUri } from "../../cli/commands/pull.js";
import { exitCodeFor, formatBytes, formatCount, formatError, formatTable } from "../../cli/output.js";
import type { LocalMachine, MembershipView } from "../../cli/localMachine.js";
import { runCli } from "../../cli/program.js";
import { checkShape, formatIssuePath } from "../../cli/responseShape.js";
import { rejectionOf, thrownBy } from "../support/thrown.js";

describe("exit codes and error lines", () => {
  it("maps usage and config errors to 2, an unreachable daemon to 3, Ctrl-C to 130, anything else to 1", () => {
    expect(exitCodeFor(new HearthError("HEARTH_CLI_USAGE"))).toBe(2);
    expect(exitCodeFor(new HearthError("HEARTH_CONFIG_INVALID"))).toBe(2);
    expect(exitCodeFor(new HearthError("HEARTH_DAEMON_UNREACHABLE"))).toBe(3);
    expect(exitCodeFor(new HearthError("HEARTH_MODEL_NOT_FOUND"))).toBe(1);
    expect(exitCodeFor(new HearthError("HEARTH_DOWNLOAD_FAILED"))).toBe(1);
    expect(exitCodeFor(new HearthError("HEARTH_CANCELLED"))).toBe(130);
    expect(exitCodeFor(new Error("bug"))).toBe(1);
  });

  it("prints HearthErrors as `error [CODE]: message`", () => {
    expect(formatError(new HearthError("HEARTH_MODEL_NOT_FOUND", "no model named x"))).toBe("error [HEARTH_MODEL_NOT_FOUND]: no model named x");
    expect(formatError(new Error("boom"))).toMatch(/^error \[HEARTH_INTERNAL\]: Error: boom\n\s+at /);
  });
});

describe("formatting", () => {
  it("formats sizes, counts and tables", () => {
    expect(formatBytes(512)).toBe("512 B");
    expect(formatBytes(7 * 1024 * 1024)).toBe("7.0 MiB");
    expect(formatBytes(1.5 * 1024 ** 3)).toBe("1.5 GiB");
    expect(formatCount(950)).toBe("950");
    expect(formatCount(2_097_152)).toBe("2.1M");
    expect(formatCount(1_100_048_384)).toBe("1.1B");
    expect(formatTable(["ID", "SIZE"], [["tiny", "7 MiB"], ["a-longer-id", "1 GiB"]])).toBe("ID           SIZE\ntiny         7 MiB\na-longer-id  1 GiB\n");
  });
});

describe("model URIs for pull", () => {
  const env = {};

  it("accepts hf:user/repo/file.gguf, nested paths, a branch, and https URLs", () => {
    expect(parseModelUri("hf:bartowski/Llama-3.2-1B-Instruct-GGUF/Llama-3.2-1B-Instruct-Q4_K_M.gguf", env)).toEqual({
      uri: "hf:bartowski/Llama-3.2-1B-Instruct-GGUF/Llama-3.2-1B-Instruct-Q4_K_M.gguf",
      url: "https://huggingface.co/bartowski/Llama-3.2-1B-Instruct-GGUF/resolve/main/Llama-3.2-1B-Instruct-Q4_K_M.gguf",
      fileName: "Llama-3.2-1B-Instruct-Q4_K_M.gguf",
      host: "huggingface.co",
    });
    expect(parseModelUri("hf:u/r/sub/dir/m.gguf#dev", env).url).toBe("https://huggingface.co/u/r/resolve/dev/sub/dir/m.gguf");
    expect(parseModelUri("https://example.com/files/m.Q8_0.gguf?download=1", env).fileName).toBe("m.Q8_0.gguf");
  });

  it("follows HF_ENDPOINT like node-llama-cpp", () => {
    expect(parseModelUri("hf:u/r/m.gguf", { HF_ENDPOINT: "http://127.0.0.1:9/" }).url).toBe("http://127.0.0.1:9/u/r/resolve/main/m.gguf");
  });

  it.each([
    "u/r/m.gguf",
    "hf:u/r",
    "hf:u/r/m.bin",
    "hf:u/r/../m.gguf",
    "hf:u/r/.hidden.gguf",
    "hf:u/r:Q4_K_M",
    "hf:u/r/m.gguf#a#b",
    "ftp://example.com/m.gguf",
    "https://example.com/",
    "https://example.com/..%2Fm.gguf",
  ])("refuses %j as a usage error", (uri) => {
    expect(thrownBy(() => parseModelUri(uri, env)).code).toBe("HEARTH_CLI_USAGE");
  });
});

describe("answers checked against their contract", () => {
  it("names the offending field as a path", () => {
    expect(formatIssuePath([])).toBe("(body)");
    expect(formatIssuePath(["peers", 0, "state"])).toBe("peers[0].state");
    expect(formatIssuePath([0, "id"])).toBe("[0].id");
  });

  it("keeps the daemon's own object, so fields a newer daemon adds still reach --json", () => {
    const body = { hello: "world", added: [1, 2] };
    expect(checkShape(z.object({ hello: z.string() }), body, "GET /x")).toBe(body);
  });
});

/** What the test server's /ok answers. */
const helloSchema = z.object({ hello: z.string() });

describe("daemon client", () => {
  let root: string;
  let env: NodeJS.ProcessEnv;
  let server: http.Server;
  let baseUrl: string;
  const seenAuthorization: (string | undefined)[] = [];

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      seenAuthorization.push(req.headers.authorization);
      if (req.url === "/ok") {
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ hello: "world" }));
      } else if (req.url === "/wrong-shape?x=1") {
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ hello: 5, extra: true }));
      } else if (req.url === "/missing-model") {
        res.statusCode = 404;
        res.end(JSON.stringify({ error: { message: "no model named x", type: "not_found_error", param: "model", code: "HEARTH_MODEL_NOT_FOUND" } }));
      } else if (req.url === "/unauthorized") {
        res.statusCode = 401;
        res.end(JSON.stringify({ error: { message: "a valid API key is required", type: "authentication_error", param: null, code: "HEARTH_UNAUTHORIZED" } }));
      } else if (req.url === "/stream") {
        res.setHeader("content-type", "text/event-stream");
        // Split mid-event and with CRLF to prove the parser buffers across chunks.
        res.write(": keepalive\n\ndata: {\"n\":1}\n");
        setTimeout(() => {
          res.write("\ndata: {\"n\":2}\r\n\r\ndata: [DONE]\n\n");
          res.end();
        }, 20);
      } else if (req.url === "/stream-error") {
        res.setHeader("content-type", "text/event-stream");
        res.end('data: {"n":1}\n\ndata: {"error":{"message":"runner died","type":"service_unavailable","param":null,"code":"HEARTH_RUNNER_CRASHED"}}\n\n');
      } else if (req.url === "/stream-truncated") {
        res.end('data: {"n":1}\n\n');
      } else {
        res.statusCode = 500;
        res.end("not json");
      }
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-cli-"));
    env = { HOME: root, XDG_CONFIG_HOME: path.join(root, "config"), XDG_DATA_HOME: path.join(root, "data") };
  });

  afterEach(() => {
    fs.rmSync(root, { recursive: true, force: true });
  });

  it("finds the daemon from --url, then HEARTH_URL, then the config file's host and port", async () => {
    expect((await resolveDaemonTarget(localMachine, { env })).baseUrl).toBe("http://127.0.0.1:4327");
    fs.mkdirSync(path.join(root, "config", "hearth"), { recursive: true });
    fs.writeFileSync(path.join(root, "config", "hearth", "config.toml"), 'host = "0.0.0.0"\nport = 5123\n');
    expect((await resolveDaemonTarget(localMachine, { env })).baseUrl).toBe("http://127.0.0.1:5123");
    fs.writeFileSync(path.join(root, "config", "hearth", "config.toml"), 'host = "::"\nport = 5123\n');
    expect((await resolveDaemonTarget(localMachine, { env })).baseUrl).toBe("http://[::1]:5123");
    env["HEARTH_URL"] = "http://10.0.0.2:4000/";
    expect((await resolveDaemonTarget(localMachine, { env })).baseUrl).toBe("http://10.0.0.2:4000");
    expect((await resolveDaemonTarget(localMachine, { env, url: "http://h:1" })).baseUrl).toBe("http://h:1");
    expect((await rejectionOf(resolveDaemonTarget(localMachine, { env, url: "ftp://h" }))).code).toBe("HEARTH_CLI_USAGE");
  });

  it("sends the API key from HEARTH_API_KEY as a Bearer token", async () => {
    env["HEARTH_API_KEY"] = "k-123";
    const client = new DaemonClient(await resolveDaemonTarget(localMachine, { env, url: baseUrl }));
    seenAuthorization.length = 0;
    expect(await client.getJson("/ok", helloSchema)).toEqual({ hello: "world" });
    expect(seenAuthorization).toEqual(["Bearer k-123"]);
  });

  it("keeps the daemon's error code and message", async () => {
    const client = new DaemonClient({ baseUrl, apiKey: undefined, warnings: [] });
    const notFound = await rejectionOf(client.getJson("/missing-model", helloSchema));
    expect(notFound.code).toBe("HEARTH_MODEL_NOT_FOUND");
    expect(notFound.message).toBe("no model named x");
    const unauthorized = await rejectionOf(client.getJson("/unauthorized", helloSchema));
    expect(unauthorized.code).toBe("HEARTH_UNAUTHORIZED");
    expect(unauthorized.message).toContain("HEARTH_API_KEY");
    expect((await rejectionOf(client.getJson("/other", helloSchema))).code).toBe("HEARTH_INTERNAL");
  });

  it("refuses an answer that does not fit its contract, in one line naming the endpoint and the field", async () => {
    const client = new DaemonClient({ baseUrl, apiKey: undefined, warnings: [] });
    const error = await rejectionOf(client.getJson("/wrong-shape?x=1", helloSchema));
    expect(error.code).toBe("HEARTH_INTERNAL");
    expect(error.message).toBe("the daemon answered GET /wrong-shape with an unexpected shape: hello: Invalid input: expected string, received number");
    expect(exitCodeFor(error)).toBe(1);
    expect(formatError(error)).not.toContain("\n");
  });

  it("reports a closed port as unreachable, naming the URL and how to start a daemon", async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const client = new DaemonClient({ baseUrl: `http://127.0.0.1:${port}`, apiKey: undefined, warnings: [] });
    const error = await rejectionOf(client.getJson("/health", helloSchema));
    expect(error.code).toBe("HEARTH_DAEMON_UNREACHABLE");
    expect(error.message).toBe(`no Hearth daemon answers at http://127.0.0.1:${port} (connection refused); start one with: hearth serve`);
  });

  it("parses server-sent events across chunk boundaries and stops at [DONE]", async () => {
    const client = new DaemonClient({ baseUrl, apiKey: undefined, warnings: [] });
    const events: unknown[] = [];
    for await (const event of client.postEventStream("/stream", {})) events.push(event);
    expect(events).toEqual([{ n: 1 }, { n: 2 }]);
  });

  it("turns a mid-stream error event into its HearthError, and a stream without [DONE] into an error", async () => {
    const client = new DaemonClient({ baseUrl, apiKey: undefined, warnings: [] });
    const events: unknown[] = [];
    const error = await rejectionOf(
      (async () => {
        for await (const event of client.postEventStream("/stream-error", {})) events.push(event);
      })(),
    );
    expect(events).toEqual([{ n: 1 }]);
    expect(error.code).toBe("HEARTH_RUNNER_CRASHED");
    expect(error.message).toBe("runner died");
    const truncated = await rejectionOf(
      (async () => {
        for await (const _event of client.postEventStream("/stream-truncated", {})) {
          // drain
        }
      })(),
    );
    expect(truncated.message).toContain("ended the stream before [DONE]");
  });
});

describe("the program and the machine it is handed", () => {
  const view: MembershipView = { nodeId: "NODE", fingerprint: null, clusterId: "c1", origin: "join", since: "2025-01-01T00:00:00.000Z", peerPort: 4328, peerBind: "0.0.0.0", mdns: false, staticPeers: [], dataDir: "/data" };
  const unused = (): never => {
    throw new Error("not used by this test");
  };
  const machine: LocalMachine = {
    version: () => "7.7.7-test",
    clientSettings: unused,
    serve: unused,
    models: { list: unused, directory: unused, downloader: unused },
    cluster: { init: unused, join: unused, show: () => Promise.resolve(view) },
    facts: unused,
    synth: { presets: {}, quants: [], validate: unused, write: unused, writeScripted: unused },
  };

  afterEach(() => {
    vi.restoreAllMocks();
    process.exitCode = undefined;
  });

  function capture(): () => string {
    const chunks: string[] = [];
    vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
      chunks.push(String(chunk));
      return true;
    });
    return () => chunks.join("");
  }

  it("prints the version and the membership this machine reports", async () => {
    let stdout = capture();
    expect(await runCli(["node", "hearth", "--version"], machine)).toBe(0);
    expect(stdout()).toBe("7.7.7-test\n");
    stdout = capture();
    expect(await runCli(["node", "hearth", "cluster", "show", "--json"], machine)).toBe(0);
    expect(JSON.parse(stdout())).toEqual(view);
  });
});
