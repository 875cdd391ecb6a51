import { describe, expect, it } from "vitest";
import { bearerToken, hasValidApiKey, requiresApiKey } from "../../daemon/http/authGuard.js";
import { HostGuard, localInterfaceAddresses, parseHostHeader } from "../../daemon/http/hostGuard.js";

describe("Host header parsing", () => {
  it.each([
    ["localhost", "localhost"],
    ["LOCALHOST:4327", "localhost"],
    ["127.0.0.1:80", "127.0.0.1"],
    ["[::1]:4327", "::1"],
    ["[::1]", "::1"],
    ["::1", "::1"],
    ["[fe80::1%25eth0]:1", "fe80::1"],
    ["example.com.", "example.com"],
  ])("%s → %s", (header, expected) => {
    expect(parseHostHeader(header)).toBe(expected);
  });

  it.each([undefined, "", "host:port", "[::1", "[::1]x", "a:99999999"])("rejects malformed %j", (header) => {
    expect(parseHostHeader(header)).toBeUndefined();
  });
});

describe("HostGuard", () => {
  const guard = new HostGuard({
    boundHost: "10.0.0.5",
    allowedHosts: ["hearth.home.arpa", "Media-Box:8080"],
    interfaceAddresses: () => ["192.168.1.20", "fe80::abcd"],
    hostname: "kitchen",
  });

  it.each([
    "localhost",
    "localhost:4327",
    "127.0.0.1:4327",
    "[::1]:4327",
    "::1",
    "10.0.0.5:4327",
    "192.168.1.20:4327",
    "[fe80::abcd]:4327",
    "hearth.home.arpa",
    "media-box:4327",
    "kitchen:4327",
    "kitchen.local",
  ])("accepts %s", (host) => {
    expect(guard.isAllowed(host)).toBe(true);
  });

  it.each([undefined, "", "evil.example", "evil.example:4327", "127.0.0.1.evil.example", "localhost.evil.example", "192.168.1.21"])(
    "rejects %j (DNS rebinding names)",
    (host) => {
      expect(guard.isAllowed(host)).toBe(false);
    },
  );

  it("does not treat a wildcard bind address as a name", () => {
    const wildcard = new HostGuard({ boundHost: "0.0.0.0", allowedHosts: [], interfaceAddresses: () => [], hostname: "" });
    expect(wildcard.isAllowed("0.0.0.0")).toBe(false);
    expect(wildcard.isAllowed("localhost")).toBe(true);
  });

  it("accepts this machine's real interface addresses by default", () => {
    const real = new HostGuard({ boundHost: "127.0.0.1", allowedHosts: [] });
    for (const address of localInterfaceAddresses()) {
      const header = address.includes(":") ? `[${address}]:4327` : `${address}:4327`;
      expect(real.isAllowed(header)).toBe(true);
    }
  });
});

describe("API key guard", () => {
  it("protects /v1, /hearth and /metrics but not /health", () => {
    expect(requiresApiKey("/v1/models")).toBe(true);
    expect(requiresApiKey("/v1/unknown")).toBe(true);
    expect(requiresApiKey("/hearth/v1/status")).toBe(true);
    expect(requiresApiKey("/metrics")).toBe(true);
    expect(requiresApiKey("/health")).toBe(false);
    expect(requiresApiKey("/v1x")).toBe(false);
  });

  it("reads bearer tokens case-insensitively", () => {
    expect(bearerToken("Bearer abc")).toBe("abc");
    expect(bearerToken("bearer   abc  ")).toBe("abc");
    expect(bearerToken("Basic abc")).toBeUndefined();
    expect(bearerToken("Bearer ")).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
  });

  it("accepts only the exact key", () => {
    const bearer = (authorization: string | undefined) => (authorization === undefined ? {} : { authorization });
    expect(hasValidApiKey(bearer("Bearer s3cret"), "s3cret")).toBe(true);
    expect(hasValidApiKey(bearer("Bearer s3cre"), "s3cret")).toBe(false);
    expect(hasValidApiKey(bearer("Bearer s3cretX"), "s3cret")).toBe(false);
    expect(hasValidApiKey(bearer("Bearer S3CRET"), "s3cret")).toBe(false);
    expect(hasValidApiKey(bearer("s3cret"), "s3cret")).toBe(false);
    expect(hasValidApiKey(bearer(undefined), "s3cret")).toBe(false);
  });

  it("takes the key from x-api-key too, as Anthropic clients send it", () => {
    expect(hasValidApiKey({ "x-api-key": "s3cret" }, "s3cret")).toBe(true);
    expect(hasValidApiKey({ "x-api-key": "s3cre" }, "s3cret")).toBe(false);
    expect(hasValidApiKey({ "x-api-key": "" }, "s3cret")).toBe(false);
    // A wrong bearer token is not rescued by a right x-api-key: the bearer token is the one checked.
    expect(hasValidApiKey({ authorization: "Bearer nope", "x-api-key": "s3cret" }, "s3cret")).toBe(false);
  });

  it("protects the Ollama API under /api like /v1", () => {
    expect(requiresApiKey("/api/chat")).toBe(true);
    expect(requiresApiKey("/api")).toBe(true);
    expect(requiresApiKey("/apiary")).toBe(false);
  });
});
