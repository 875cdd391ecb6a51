// The error catalogue (protocol/errors.ts) and the retry rules that read it
// (scheduler/retryPolicy.ts): every code has its factory, named after it; every code's fault
// class and retryability are the ones written down here by hand, so a change to either shows
// as a failing line; and each retry rule answers for every code as its class says.

import { describe, expect, it } from "vitest";
import { ERROR_CATALOGUE, errors, faultOf, HearthError, isRetryable, type FaultClass, type HearthErrorCode } from "../../protocol/errors.js";
import { isNodeFailure, isNodeLoss, isRecoverableByReplacement, isTransientCapacity, MAX_ROUTE_ATTEMPTS, shouldRetryElsewhere, type RetryQuestion } from "../../scheduler/retryPolicy.js";

const CODES = Object.keys(ERROR_CATALOGUE) as HearthErrorCode[];

/** HEARTH_QUEUE_FULL -> queueFull. */
function factoryName(code: HearthErrorCode): string {
  const words = code.replace(/^HEARTH_/, "").toLowerCase().split("_");
  return words.map((word, index) => (index === 0 ? word : word.charAt(0).toUpperCase() + word.slice(1))).join("");
}

/** The factories that are not named after one code: they take the code, or word one message. */
const EXTRA_FACTORIES = ["withCode", "unknownModel"];

/** Who fails, per code: the decisions retries and failover are built on (written out, not derived). */
const FAULTS: Record<FaultClass, HearthErrorCode[]> = {
  client: [
    "HEARTH_INVALID_JSON",
    "HEARTH_INVALID_REQUEST",
    "HEARTH_UNSUPPORTED_SCHEMA",
    "HEARTH_CONTEXT_OVERFLOW",
    "HEARTH_UNSUPPORTED_MEDIA_TYPE",
    "HEARTH_BODY_TOO_LARGE",
    "HEARTH_NOT_FOUND",
    "HEARTH_METHOD_NOT_ALLOWED",
    "HEARTH_MODEL_NOT_FOUND",
    "HEARTH_MODEL_NOT_CAPABLE",
    "HEARTH_UNAUTHORIZED",
    "HEARTH_FORBIDDEN_HOST",
    "HEARTH_CANCELLED",
    "HEARTH_RESUME_UNSUPPORTED",
    "HEARTH_CONFIG_INVALID",
    "HEARTH_CLI_USAGE",
    "HEARTH_MODEL_NOT_SHARED",
    "HEARTH_MODEL_FETCH_REFUSED",
    "HEARTH_GGUF_INVALID",
    "HEARTH_JOIN_TOKEN_INVALID",
    "HEARTH_CLUSTER_CONFLICT",
    "HEARTH_BATCH_INVALID",
    "HEARTH_JOB_NOT_FOUND",
    "HEARTH_JOB_NOT_FINISHED",
    "HEARTH_RESPONSE_NOT_FOUND",
  ],
  peer: [
    "HEARTH_SHUTTING_DOWN",
    "HEARTH_DAEMON_UNREACHABLE",
    "HEARTH_DOWNLOAD_FAILED",
    "HEARTH_MODEL_TRANSFER_FAILED",
    "HEARTH_PEER_FRAME_TOO_LARGE",
    "HEARTH_PEER_FRAME_INVALID",
    "HEARTH_PEER_PROTOCOL_VIOLATION",
    "HEARTH_PEER_FLOW_CONTROL",
    "HEARTH_PEER_AUTH_FAILED",
    "HEARTH_PEER_UNKNOWN_STREAM",
    "HEARTH_PEER_TIMEOUT",
    "HEARTH_PEER_DUPLICATE_LINK",
    "HEARTH_PEER_INCOMPATIBLE",
    "HEARTH_PEER_UNAVAILABLE",
  ],
  runner: ["HEARTH_RUNNER_CRASHED", "HEARTH_RUNNER_NOT_READY", "HEARTH_MODEL_LOAD_FAILED", "HEARTH_PLACEMENT_RETIRED", "HEARTH_RECOVERY_EXHAUSTED"],
  resource: ["HEARTH_QUEUE_FULL", "HEARTH_PLAN_DOES_NOT_FIT", "HEARTH_INSUFFICIENT_DISK", "HEARTH_NATIVE_MISSING", "HEARTH_RPC_UNAVAILABLE", "HEARTH_IDENTITY_INVALID"],
  internal: ["HEARTH_INTERNAL"],
};

/** Codes for which the same request may succeed later (429/503-style answers). */
const RETRYABLE: HearthErrorCode[] = [
  "HEARTH_QUEUE_FULL",
  "HEARTH_SHUTTING_DOWN",
  "HEARTH_RUNNER_CRASHED",
  "HEARTH_RUNNER_NOT_READY",
  "HEARTH_MODEL_LOAD_FAILED",
  "HEARTH_PLACEMENT_RETIRED",
  "HEARTH_RECOVERY_EXHAUSTED",
  "HEARTH_RESUME_UNSUPPORTED",
  "HEARTH_DAEMON_UNREACHABLE",
  "HEARTH_DOWNLOAD_FAILED",
  "HEARTH_MODEL_TRANSFER_FAILED",
  "HEARTH_PEER_TIMEOUT",
  "HEARTH_PEER_UNAVAILABLE",
];

const sorted = (codes: readonly HearthErrorCode[]): HearthErrorCode[] => [...codes].sort();
const where = (rule: (code: HearthErrorCode) => boolean): HearthErrorCode[] => sorted(CODES.filter(rule));

describe("error factories", () => {
  it("every catalogue code has a factory named after it in camelCase (HEARTH_QUEUE_FULL -> queueFull), and no other factory exists but withCode and unknownModel", () => {
    const names = Object.keys(errors).sort();
    expect(factoryName("HEARTH_QUEUE_FULL")).toBe("queueFull");
    expect(names).toEqual([...CODES.map(factoryName), ...EXTRA_FACTORIES].sort());
  });

  it("each code's factory makes a HearthError with that code, its catalogue status and type, and the catalogue's description when no message is given", () => {
    const byName = errors as unknown as Record<string, (message?: string) => HearthError>;
    for (const code of CODES) {
      // shuttingDown takes retry-after seconds, not a message: call it bare like the others.
      const error = byName[factoryName(code)]!();
      expect(error, code).toBeInstanceOf(HearthError);
      expect(error.code, code).toBe(code);
      expect(error.status, code).toBe(ERROR_CATALOGUE[code].status);
      expect(error.type, code).toBe(ERROR_CATALOGUE[code].type);
      expect(error.fault, code).toBe(ERROR_CATALOGUE[code].fault);
      expect(error.retryable, code).toBe(ERROR_CATALOGUE[code].retryable);
    }
    expect(errors.queueFull().message).toBe(ERROR_CATALOGUE.HEARTH_QUEUE_FULL.description);
    expect(errors.cancelled().message).toBe("The request was cancelled by the client.");
  });

  it("a factory keeps the message, param and retry-after it is given; the fixed-wording ones word theirs", () => {
    const error = errors.queueFull("busy", { param: "model", retryAfterSeconds: 3 });
    expect(error.toPayload()).toEqual({ code: "HEARTH_QUEUE_FULL", message: "busy", param: "model", retryAfterSeconds: 3 });
    expect(errors.shuttingDown(5).toPayload()).toEqual({ code: "HEARTH_SHUTTING_DOWN", message: "The daemon is shutting down.", param: null, retryAfterSeconds: 5 });
    expect(errors.unknownModel("x".repeat(300), "on this node").toPayload()).toEqual({ code: "HEARTH_MODEL_NOT_FOUND", message: `model "${"x".repeat(200)}" not found on this node`, param: "model" });
    expect(errors.withCode("HEARTH_PEER_TIMEOUT", "slow").code).toBe("HEARTH_PEER_TIMEOUT");
  });
});

describe("fault classes", () => {
  it("the table above names every catalogue code exactly once", () => {
    const listed = Object.values(FAULTS).flat();
    expect(sorted(listed)).toEqual(sorted(CODES));
    expect(new Set(listed).size).toBe(listed.length);
  });

  it.each(Object.entries(FAULTS) as [FaultClass, HearthErrorCode[]][])("fault %s is exactly its listed codes", (fault, codes) => {
    expect(where((code) => faultOf(code) === fault)).toEqual(sorted(codes));
  });

  it("retryable codes are exactly the listed ones", () => {
    expect(where(isRetryable)).toEqual(sorted(RETRYABLE));
  });
});

describe("retry rules over every code", () => {
  it("a node failure is a peer or runner fault: a request failure (client), capacity (resource) or a bug (internal) is not", () => {
    expect(where(isNodeFailure)).toEqual(sorted([...FAULTS.peer, ...FAULTS.runner]));
  });

  it("a node loss is a peer fault only: a runner that failed leaves its node in the job", () => {
    expect(where(isNodeLoss)).toEqual(sorted(FAULTS.peer));
  });

  it("transient capacity is a retryable resource fault: only a full queue", () => {
    expect(where(isTransientCapacity)).toEqual(["HEARTH_QUEUE_FULL"]);
  });

  it("a split placement is replaced after runner faults only", () => {
    expect(where(isRecoverableByReplacement)).toEqual(sorted(FAULTS.runner));
  });

  const first: Omit<RetryQuestion, "code"> = { attempts: 1, deltasSent: false, pinned: false, retry: true, aborted: false };

  it("a first attempt that failed before any delta is retried elsewhere exactly for the node failures", () => {
    expect(where((code) => shouldRetryElsewhere({ ...first, code }))).toEqual(sorted([...FAULTS.peer, ...FAULTS.runner]));
  });

  it.each([
    ["a delta reached the caller", { deltasSent: true }],
    ["the job is pinned", { pinned: true }],
    ["the caller turned retry off", { retry: false }],
    ["the caller gave up", { aborted: true }],
    [`${MAX_ROUTE_ATTEMPTS} attempts were made`, { attempts: MAX_ROUTE_ATTEMPTS }],
  ] as [string, Partial<RetryQuestion>][])("nothing is retried elsewhere once %s", (_why, change) => {
    expect(where((code) => shouldRetryElsewhere({ ...first, ...change, code }))).toEqual([]);
  });

  it("at most two attempts: the first node and one other", () => {
    expect(MAX_ROUTE_ATTEMPTS).toBe(2);
  });
});
