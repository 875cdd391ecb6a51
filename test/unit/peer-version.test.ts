// Protocol version negotiation: same major talks at the lower minor, different majors refuse
// with a reason that says which side to upgrade.

import { describe, expect, it } from "vitest";
import { formatProtocolVersion, negotiate, PROTOCOL_VERSION } from "../../protocol/peer/version.js";
import type { ProtocolVersion } from "../../protocol/peer/version.js";

const v = (major: number, minor: number): ProtocolVersion => ({ major, minor });

describe("negotiate", () => {
  it.each([
    [v(1, 0), v(1, 0), v(1, 0)],
    [v(1, 0), v(1, 4), v(1, 0)],
    [v(1, 4), v(1, 0), v(1, 0)],
    [v(1, 3), v(1, 7), v(1, 3)],
    [v(2, 9), v(2, 2), v(2, 2)],
    [v(0, 1), v(0, 0), v(0, 0)],
  ])("%o with %o talks at %o", (local, remote, agreed) => {
    const result = negotiate(local, remote);
    expect(result).toEqual({ compatible: true, version: agreed });
    // Symmetric: both ends agree on the same version.
    expect(negotiate(remote, local)).toEqual(result);
  });

  it.each([
    [v(1, 0), v(2, 0), "upgrade this node"],
    [v(1, 9), v(2, 0), "upgrade this node"],
    [v(2, 0), v(1, 9), "upgrade the peer"],
    [v(1, 0), v(0, 5), "upgrade the peer"],
  ])("%o with %o is incompatible (%s)", (local, remote, advice) => {
    const result = negotiate(local, remote);
    expect(result.compatible).toBe(false);
    if (result.compatible) return;
    expect(result.reason).toContain(`peer speaks protocol ${formatProtocolVersion(remote)}`);
    expect(result.reason).toContain(`this node speaks ${formatProtocolVersion(local)}`);
    expect(result.reason).toContain(advice);
  });

  it("this build speaks 1.0", () => {
    expect(PROTOCOL_VERSION).toEqual({ major: 1, minor: 0 });
    expect(Object.isFrozen(PROTOCOL_VERSION)).toBe(true);
  });
});
