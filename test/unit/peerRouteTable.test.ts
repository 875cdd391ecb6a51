// The peer route table (daemon/peers/PeerRouteTable.ts): what a peer can reach on this node,
// by request method and stream purpose, filled from the services' declared routes and frozen
// before the links start.

import { describe, expect, it } from "vitest";
import type { RequestHandler } from "../../daemon/peers/linkRequests.js";
import type { StreamHandler } from "../../daemon/peers/linkStreams.js";
import { PeerRouteTable } from "../../daemon/peers/PeerRouteTable.js";
import { thrownBy } from "../support/thrown.js";

const request = (answer: string): RequestHandler => () => answer;
const stream = (): StreamHandler => () => undefined;

describe("PeerRouteTable", () => {
  it("serve() adds every request method and stream purpose of each service, and lookups find exactly those handlers", () => {
    const ping = request("pong");
    const fetch = request("fetched");
    const infer = stream();
    const tunnel = stream();
    const table = new PeerRouteTable();
    expect(table.serve({ requests: { "test.ping": ping }, streams: { infer } })).toBe(table);
    table.serve({ requests: { "models.fetch": fetch }, streams: { "rpc.tunnel": tunnel } }).serve({});

    expect(table.request("test.ping")).toBe(ping);
    expect(table.request("models.fetch")).toBe(fetch);
    expect(table.stream("infer")).toBe(infer);
    expect(table.stream("rpc.tunnel")).toBe(tunnel);
    expect(table.list()).toEqual({ requests: ["models.fetch", "test.ping"], streams: ["infer", "rpc.tunnel"] });
  });

  it("an unknown method or purpose, or one of the other kind, is not found", () => {
    const table = new PeerRouteTable().serve({ requests: { "test.ping": request("pong") }, streams: { infer: stream() } });
    expect(table.request("test.nothing")).toBeUndefined();
    expect(table.stream("model.fetch")).toBeUndefined();
    // Requests and streams are separate namespaces.
    expect(table.request("infer")).toBeUndefined();
    expect(table.stream("test.ping")).toBeUndefined();
    // Object prototype names are not routes.
    expect(table.request("constructor")).toBeUndefined();
    expect(table.stream("__proto__")).toBeUndefined();
  });

  it("a request method served twice by serve() is refused as a wiring bug (HEARTH_INTERNAL) and the first handler stays", () => {
    const first = request("first");
    const table = new PeerRouteTable().serve({ requests: { "test.ping": first } });
    const error = thrownBy(() => table.serve({ requests: { "test.ping": request("second") } }));
    expect(error.code).toBe("HEARTH_INTERNAL");
    expect(error.message).toBe("request method test.ping is served twice");
    expect(table.request("test.ping")).toBe(first);
  });

  it("a stream purpose served twice by serve() is refused the same way", () => {
    const first = stream();
    const table = new PeerRouteTable().serve({ streams: { infer: first } });
    const error = thrownBy(() => table.serve({ streams: { infer: stream() } }));
    expect(error.code).toBe("HEARTH_INTERNAL");
    expect(error.message).toBe("stream purpose infer is served twice");
    expect(table.stream("infer")).toBe(first);
  });

  it("the same name as a request method and as a stream purpose is no conflict", () => {
    const table = new PeerRouteTable().serve({ requests: { same: request("r") } }).serve({ streams: { same: stream() } });
    expect(table.list()).toEqual({ requests: ["same"], streams: ["same"] });
  });

  it("handleRequest and handleStream add a route, or replace an earlier one, served or handled", () => {
    const table = new PeerRouteTable().serve({ requests: { "test.ping": request("served") }, streams: { infer: stream() } });
    const replacement = request("replaced");
    table.handleRequest("test.ping", replacement);
    expect(table.request("test.ping")).toBe(replacement);
    const again = request("again");
    table.handleRequest("test.ping", again);
    expect(table.request("test.ping")).toBe(again);

    const streamReplacement = stream();
    table.handleStream("infer", streamReplacement);
    expect(table.stream("infer")).toBe(streamReplacement);
    const added = stream();
    table.handleStream("test.hold", added);
    expect(table.stream("test.hold")).toBe(added);
    expect(table.list()).toEqual({ requests: ["test.ping"], streams: ["infer", "test.hold"] });
  });

  it("after freeze() nothing can be added or replaced, by any of the three ways, and the routes stay as they were", () => {
    const ping = request("pong");
    const infer = stream();
    const table = new PeerRouteTable().serve({ requests: { "test.ping": ping }, streams: { infer } });
    table.freeze();
    const attempts: Array<[() => unknown, string]> = [
      [() => table.serve({ requests: { "test.new": request("x") } }), "request method test.new"],
      [() => table.serve({ streams: { "test.new": stream() } }), "stream purpose test.new"],
      [() => table.handleRequest("test.ping", request("x")), "request method test.ping"],
      [() => table.handleStream("infer", stream()), "stream purpose infer"],
    ];
    for (const [attempt, what] of attempts) {
      const error = thrownBy(attempt);
      expect(error.code, what).toBe("HEARTH_INTERNAL");
      expect(error.message).toBe(`the peer route table is frozen; cannot add ${what}`);
    }
    expect(table.request("test.ping")).toBe(ping);
    expect(table.stream("infer")).toBe(infer);
    expect(table.list()).toEqual({ requests: ["test.ping"], streams: ["infer"] });
  });
});
