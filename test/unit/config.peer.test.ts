// The [peer] table and the peer flags: defaults, every key read from the file, --peer adding to
// static_peers, --no-mdns, and validation that names the key (or the flag) of a bad value:
// a bad host:port, a bad duration, limits that contradict each other.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { HearthError } from "../../protocol/errors.js";
import { DEFAULT_PEER } from "../../daemon/config/defaults.js";
import { loadConfig, type ConfigFlags } from "../../daemon/config/loadConfig.js";
import { rejectionOf } from "../support/thrown.js";

let root: string;
let env: NodeJS.ProcessEnv;

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-config-peer-"));
  env = { HOME: path.join(root, "home"), XDG_CONFIG_HOME: path.join(root, "xdg-config"), XDG_DATA_HOME: path.join(root, "xdg-data") };
});

afterEach(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

function writeConfig(text: string): string {
  const file = path.join(root, "xdg-config", "hearth", "config.toml");
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  return file;
}

async function load(flags: ConfigFlags = {}) {
  return (await loadConfig({ env, cwd: root, flags })).config;
}

async function failure(flags: ConfigFlags = {}): Promise<HearthError> {
  const error = await rejectionOf(load(flags));
  expect(error.code).toBe("HEARTH_CONFIG_INVALID");
  return error;
}

describe("[peer] defaults and keys", () => {
  it("defaults to port 4328 on 0.0.0.0, mDNS on, no static peers", async () => {
    const config = await load();
    expect(config.peer).toEqual(DEFAULT_PEER);
    expect(config.peer).toMatchObject({ host: "0.0.0.0", port: 4328, mdns: true, staticPeers: [], heartbeatIntervalMs: 2000, heartbeatTimeoutMs: 9000 });
  });

  it("reads every key of the table, durations with units", async () => {
    writeConfig(`
[peer]
bind = "192.168.1.10"
port = 5000
static_peers = ["10.0.0.2:4328", "[fd00::3]:4400", "desktop.lan"]
mdns = false
max_frame_bytes = 2097152
max_stream_chunk_bytes = 131072
max_nesting_depth = 16
handshake_timeout = "5s"
heartbeat_interval = "1s"
heartbeat_timeout = "4s"
close_grace = "500ms"
dial_timeout = "3s"
dial_backoff_initial = "250ms"
dial_backoff_max = "10s"
dial_backoff_jitter = 0.25
request_timeout = "1m"
max_concurrent_requests = 8
max_open_streams = 9
stream_window_bytes = 65536
max_unknown_stream_messages = 10
max_pending_handshakes = 4
max_connections = 12
max_failed_attempts = 3
failed_attempt_window = "2m"
max_tracked_addresses = 100
state_publish_interval = "30s"
speed_probe_tokens = 16
hardware_probe_timeout = "10s"
`);
    expect((await load()).peer).toEqual({
      host: "192.168.1.10",
      port: 5000,
      staticPeers: ["10.0.0.2:4328", "[fd00::3]:4400", "desktop.lan"],
      mdns: false,
      maxFrameBytes: 2_097_152,
      maxStreamChunkBytes: 131_072,
      maxNestingDepth: 16,
      handshakeTimeoutMs: 5000,
      heartbeatIntervalMs: 1000,
      heartbeatTimeoutMs: 4000,
      closeGraceMs: 500,
      dialTimeoutMs: 3000,
      dialBackoffInitialMs: 250,
      dialBackoffMaxMs: 10_000,
      dialBackoffJitter: 0.25,
      requestTimeoutMs: 60_000,
      maxConcurrentRequests: 8,
      maxOpenStreams: 9,
      streamWindowBytes: 65_536,
      maxUnknownStreamMessages: 10,
      maxPendingHandshakes: 4,
      maxConnections: 12,
      maxFailedAttempts: 3,
      failedAttemptWindowMs: 120_000,
      maxTrackedAddresses: 100,
      statePublishIntervalMs: 30_000,
      speedProbeTokens: 16,
      hardwareProbeTimeoutMs: 10_000,
    });
  });

  it("port 0 asks for an ephemeral peer port", async () => {
    writeConfig("[peer]\nport = 0\n");
    expect((await load()).peer.port).toBe(0);
  });
});

describe("peer flags", () => {
  it("--peer adds to the file's static_peers, in order", async () => {
    writeConfig('[peer]\nstatic_peers = ["10.0.0.2:4328"]\n');
    expect((await load({ peer: ["10.0.0.3:4000", "10.0.0.4"] })).peer.staticPeers).toEqual(["10.0.0.2:4328", "10.0.0.3:4000", "10.0.0.4"]);
  });

  it("--peer-port and --peer-bind override the file, and --no-mdns turns mDNS off", async () => {
    writeConfig('[peer]\nport = 5000\nbind = "10.0.0.1"\nmdns = true\n');
    const config = await load({ peerPort: "6000", peerBind: "127.0.0.1", mdns: false });
    expect(config.peer).toMatchObject({ port: 6000, host: "127.0.0.1", mdns: false });
  });

  it("leaves mdns as the file says when --no-mdns is absent", async () => {
    writeConfig("[peer]\nmdns = false\n");
    expect((await load()).peer.mdns).toBe(false);
  });
});

describe("peer validation names the key", () => {
  it("a static peer with a bad port names its index in the file", async () => {
    writeConfig('[peer]\nstatic_peers = ["10.0.0.2:4328", "10.0.0.3:99999"]\n');
    const error = await failure();
    expect(error.param).toBe("peer.static_peers[1]");
    expect(error.message).toMatch(/^peer\.static_peers\[1\]: Static peer "10\.0\.0\.3:99999": port 99999 is outside 1-65535/);
    expect(error.message).toContain("config.toml");
  });

  it.each([
    ["::1:4328", /looks like an IPv6 address; put it in brackets/],
    ["http://10.0.0.2:4328", /is a URL/],
    ["224.0.0.251:4328", /multicast/],
    ["bad_host!:1", /neither an IP address nor a host name/],
    ["", /is empty/],
  ])("--peer %j is refused, named by the flag", async (entry, reason) => {
    const error = await failure({ peer: [entry] });
    expect(error.param).toBe("--peer");
    expect(error.message).toMatch(/^--peer: /);
    expect(error.message).toMatch(reason);
    expect(error.message).toContain("on the command line");
  });

  it("static_peers must be an array of strings", async () => {
    writeConfig('[peer]\nstatic_peers = "10.0.0.2:4328"\n');
    expect((await failure()).message).toMatch(/^peer\.static_peers: expected an array of "host:port" strings/);
  });

  it("a bad port, bind address, duration, fraction or boolean names its key", async () => {
    writeConfig('[peer]\nport = 70000\nbind = "not a host"\nheartbeat_interval = 2\ndial_backoff_jitter = 1.5\nmdns = "yes"\nhandshake_timeout = "0s"\n');
    const lines = (await failure()).message.split("\n").slice(1).map((line) => line.trim());
    expect(lines).toEqual([
      "peer.bind: expected a host name or IP address, like \"127.0.0.1\" or \"0.0.0.0\", got \"not a host\"",
      "peer.port: expected a port number from 0 to 65535, got 70000",
      "peer.mdns: expected true or false, got \"yes\"",
      "peer.handshake_timeout: expected a duration above zero, like \"500ms\" or \"2s\", got \"0s\"",
      "peer.heartbeat_interval: expected a duration with a unit, like \"500ms\", \"30s\", \"5m\" or \"1h\", got 2",
      "peer.dial_backoff_jitter: expected a number from 0 to 1, got 1.5",
    ]);
  });

  it("a bad --peer-port is named by its flag", async () => {
    const error = await failure({ peerPort: "80000" });
    expect(error.message).toBe("--peer-port: expected a port number from 0 to 65535, got 80000 (on the command line)");
  });

  it("an unknown key in [peer] suggests the right one", async () => {
    writeConfig('[peer]\nstatic_peer = ["10.0.0.2"]\n');
    expect((await failure()).message).toMatch(/peer\.static_peer: unknown key \(did you mean "static_peers"\?\)/);
  });

  it("refuses timings and sizes that contradict each other, naming both keys", async () => {
    writeConfig('[peer]\nheartbeat_interval = "10s"\nheartbeat_timeout = "5s"\ndial_backoff_initial = "5s"\ndial_backoff_max = "1s"\nmax_stream_chunk_bytes = 2097152\nmax_frame_bytes = 1048576\n');
    const message = (await failure()).message;
    expect(message).toContain("peer.heartbeat_timeout: must be longer than peer.heartbeat_interval (10000 ms), got 5000 ms");
    expect(message).toContain("peer.dial_backoff_max: must be at least peer.dial_backoff_initial (5000 ms), got 1000 ms");
    expect(message).toContain("peer.max_stream_chunk_bytes: must be at most 1048576 (the protocol's cap), got 2097152");
    expect(message).toContain("peer.max_stream_chunk_bytes: must be smaller than peer.max_frame_bytes (1048576), got 2097152");
  });
});
