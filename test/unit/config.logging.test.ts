// The daemon logger: JSON lines with component fields, secrets redacted, levels honoured.

import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogging, REDACTED } from "../../daemon/log.js";

function capture(level: "info" | "warn" = "info") {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString("utf8").split("\n")) if (line.trim() !== "") lines.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
  const logging = createLogging({ level, pretty: false, destination });
  return { logging, lines };
}

describe("logging", () => {
  it("writes JSON lines carrying the component of child loggers", () => {
    const { logging, lines } = capture();
    logging.logger.child({ component: "http" }).info({ path: "/v1/models" }, "request done");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ component: "http", path: "/v1/models", msg: "request done", level: 30 });
  });

  it("redacts authorization headers and API keys wherever they are logged", () => {
    const { logging, lines } = capture();
    const secret = "sk-very-secret";
    logging.logger.info({ req: { headers: { authorization: `Bearer ${secret}`, host: "x" } } }, "a");
    logging.logger.info({ headers: { authorization: `Bearer ${secret}`, "x-api-key": secret } }, "b");
    logging.logger.info({ config: { apiKey: secret, port: 1 } }, "c");
    logging.logger.info({ apiKey: secret, api_key: secret }, "d");
    logging.logger.child({ component: "peers" }).info({ peer: { authorization: secret } }, "e");
    const text = JSON.stringify(lines);
    expect(text).not.toContain(secret);
    expect(lines[0]).toMatchObject({ req: { headers: { authorization: REDACTED, host: "x" } } });
    expect(lines[2]).toMatchObject({ config: { apiKey: REDACTED, port: 1 } });
    expect(lines).toHaveLength(5);
  });

  it("drops lines below the configured level, and flush resolves", async () => {
    const { logging, lines } = capture("warn");
    logging.logger.info("quiet");
    logging.logger.warn("loud");
    await logging.flush();
    logging.flushSync();
    expect(lines.map((line) => line["msg"])).toEqual(["loud"]);
  });
});
