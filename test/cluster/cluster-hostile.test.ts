/**
 * A live daemon's peer port under attack from another host on the LAN: raw TCP and TLS
 * garbage, malformed upgrades and WebSocket framing, forged, oversized and truncated frames,
 * forged and replayed handshakes, a member misbehaving after its handshake, a handshake flood,
 * and fast-check fuzz runs (thousands of cases) before and after authentication.
 *
 *   n1  the target (cluster member)
 *   n2  another member, linked to n1 the whole time
 *   n3  the attacker (no daemon): fixtures/cluster-hostile.ts, with many source addresses,
 *       because the daemon rate-limits failed handshakes per address
 *
 * After every attack run the target must still be alive and serving: n1 and n2 up in each
 * other's tables with no drop in between, /health 200, and a chat completion that works. The
 * per-frame decoder fuzzing is unit-tested in test/unit/peer-codec.test.ts; this is the same
 * question asked of the whole daemon.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { shortNodeId } from "../../protocol/peer/identity.js";
import { ClusterNet, clusterFixture, MODEL_ID, PEER_PORT, seesUp, type ClusterNode } from "../support/clusterNet.js";
import { requireTool } from "../support/netns-system.js";

const PREAUTH_CASES = Number(process.env.HEARTH_FUZZ_PREAUTH_CASES ?? 800);
const POSTAUTH_CASES = Number(process.env.HEARTH_FUZZ_POSTAUTH_CASES ?? 2_500);
const FUZZ_SEED = Number(process.env.HEARTH_FUZZ_SEED ?? Date.now() % 1_000_000);
/** The daemon's default: failed handshakes per address per minute before it answers 429. */
const DEFAULT_MAX_FAILED_ATTEMPTS = 10;
/** Stay below it (each case costs at most one), so every fuzz case reaches the decoder rather than the limiter. */
const BUDGET_PER_ADDRESS = DEFAULT_MAX_FAILED_ATTEMPTS - 1;
/** Each named attack takes a fresh address; the replay takes two. */
const ATTACK_SOURCES = 45;
const FUZZ_SOURCES = Math.ceil(PREAUTH_CASES / BUDGET_PER_ADDRESS) + 2;
/** Extra addresses go from .100 to .254 of the nodes' /24, clear of the nodes' own (.11 up). */
const FIRST_SOURCE_HOST = 100;
const MAX_SOURCES = 255 - FIRST_SOURCE_HOST;
const MESH_WITHIN_MS = 15_000;

let net: ClusterNet;
let target: ClusterNode;
let member: ClusterNode;
let attacker: ClusterNode;
let sources: string[] = [];

beforeAll(async () => {
  net = await ClusterNet.create({ nodes: [{}, {}, { cluster: null }] });
  [target, member, attacker] = net.nodes as [ClusterNode, ClusterNode, ClusterNode];
  const since = performance.now();
  await net.startAll([target, member]);
  await net.waitForMesh([target, member], { since, timeoutMs: MESH_WITHIN_MS });
  // The attacker's extra addresses, on the same /24 above the nodes' own (.11 and up).
  const prefix = attacker.address.split(".").slice(0, 3).join(".");
  const count = ATTACK_SOURCES + FUZZ_SOURCES;
  if (count > MAX_SOURCES) throw new Error(`${count} source addresses do not fit above .${FIRST_SOURCE_HOST} of the /24; lower HEARTH_FUZZ_PREAUTH_CASES`);
  sources = Array.from({ length: count }, (_, i) => `${prefix}.${FIRST_SOURCE_HOST + i}`);
  const batch = sources.map((address) => `addr add ${address}/32 dev ${attacker.host.interfaceName}`).join("\n");
  const added = await attacker.host.exec(requireTool("ip"), ["-batch", "-"], { input: `${batch}\n` });
  expect(added.code, added.stderr).toBe(0);
});

afterAll(async () => {
  await net?.destroy();
});

interface HostileResult {
  event: "done" | "failed";
  error?: string;
  [key: string]: unknown;
}

async function attack(mode: string, options: Record<string, unknown>, timeoutMs = 240_000): Promise<HostileResult> {
  const [targetView, memberView] = await net.views([target, member]);
  const fullOptions = {
    host: target.address,
    port: PEER_PORT,
    budgetPerAddress: BUDGET_PER_ADDRESS,
    token: target.membership!.joinToken,
    target: { nodeId: targetView!.local.nodeId, fingerprint: targetView!.local.fingerprint },
    member: { nodeId: memberView!.local.nodeId, fingerprint: memberView!.local.fingerprint },
    seed: FUZZ_SEED,
    ...options,
  };
  const run = await attacker.host.exec(process.execPath, [clusterFixture("cluster-hostile.js"), mode, JSON.stringify(fullOptions)], { timeoutMs });
  const last = run.stdout.trim().split("\n").pop() ?? "";
  let result: HostileResult;
  try {
    result = JSON.parse(last) as HostileResult;
  } catch {
    throw new Error(`the attacker printed no result (exit ${String(run.code ?? run.signal)}): ${run.stdout.slice(-2_000)} ${run.stderr.slice(-2_000)}`);
  }
  expect(result.event, result.error).toBe("done");
  return result;
}

/** Log lines with which n1 and n2 lost each other (or anything worse) since `fromLine`. */
function linkDrops(fromLines: readonly number[]): string[] {
  const drops: string[] = [];
  for (const [i, node] of [target, member].entries()) {
    const other = i === 0 ? member : target;
    for (const line of node.logLines().slice(fromLines[i])) {
      const aboutOther = line.peer === shortNodeId(other.nodeId);
      if (aboutOther && (line.msg === "peer down" || line.msg === "peer link lost")) drops.push(`${node.name}: ${JSON.stringify(line)}`);
    }
  }
  return drops;
}

/** The target is alive and serving: linked with its peer, healthy, and able to generate. */
async function expectStillServing(logMarks: readonly number[]): Promise<void> {
  expect(target.running, `the target daemon died:\n${target.logTail(40)}`).toBe(true);
  expect(target.starts).toBe(1);
  const [targetView, memberView] = await net.views([target, member]);
  expect(seesUp(targetView!, member.nodeId)).toBe(true);
  expect(seesUp(memberView!, target.nodeId)).toBe(true);
  expect(linkDrops(logMarks)).toEqual([]);
  const health = await target.http("GET", "/health");
  expect(health.status).toBe(200);
  const chat = await target.http(
    "POST",
    "/v1/chat/completions",
    { model: MODEL_ID, messages: [{ role: "user", content: "Say something." }], max_tokens: 4, temperature: 0 },
    120_000,
  );
  expect(chat.status, JSON.stringify(chat.body)).toBe(200);
  const body = chat.body as { choices: { message: { content: string } }[]; usage: { completion_tokens: number } };
  expect(typeof body.choices[0]?.message.content).toBe("string");
  expect(body.usage.completion_tokens).toBeGreaterThan(0);
  // Nothing the attacker sent made a handler throw: every refusal is a warning, never an error.
  const errors = target.logLines().filter((line) => (line.level ?? 0) >= 50);
  expect(errors).toEqual([]);
}

const marks = (): number[] => [target.logLines().length, member.logLines().length];

describe("a daemon's peer port under attack", () => {
  it("meets every named attack with its documented refusal and keeps serving", async () => {
    const logMarks = marks();
    const result = await attack("attacks", { sources: sources.slice(0, ATTACK_SOURCES) });
    const attacks = result.attacks as { name: string; expected: string[]; got: string; ok: boolean }[];
    console.log(attacks.map((entry) => `${entry.ok ? "ok " : "BAD"} ${entry.name}: ${entry.got}`).join("\n"));
    expect(attacks.length).toBeGreaterThan(30);
    expect(attacks.filter((entry) => !entry.ok)).toEqual([]);
    await expectStillServing(logMarks);
  });

  it(`survives a fuzz run of ${PREAUTH_CASES} hostile frame sequences before authentication, refusing each as documented`, async () => {
    const logMarks = marks();
    const result = await attack("fuzz-preauth", { sources: sources.slice(ATTACK_SOURCES), cases: PREAUTH_CASES });
    console.log(`pre-auth fuzz (seed ${FUZZ_SEED}): ${JSON.stringify(result.outcomes)} in ${String(result.elapsedMs)} ms; frame kinds ${JSON.stringify(result.frameKinds)}`);
    expect(result.unexpected).toEqual([]);
    expect(Object.values(result.outcomes as Record<string, number>).reduce((sum, count) => sum + count, 0)).toBe(PREAUTH_CASES);
    await expectStillServing(logMarks);
  });

  it(`survives a fuzz run of ${POSTAUTH_CASES} hostile frame sequences on authenticated links (a stolen token)`, async () => {
    const logMarks = marks();
    const result = await attack("fuzz-postauth", { sources: [], cases: POSTAUTH_CASES });
    console.log(`post-auth fuzz (seed ${FUZZ_SEED}): ${JSON.stringify(result.outcomes)} over ${String(result.links)} links in ${String(result.elapsedMs)} ms`);
    expect(result.unexpected).toEqual([]);
    expect(Object.values(result.outcomes as Record<string, number>).reduce((sum, count) => sum + count, 0)).toBe(POSTAUTH_CASES);
    await expectStillServing(logMarks);
  });
});
