/**
 * The protocol version this node announces in its hello and its mDNS TXT record.
 *
 * Normally PROTOCOL_VERSION. The test-only environment knob HEARTH_TEST_PROTOCOL_MAJOR=<n>
 * makes the node announce major <n> instead (same minor), so tests can start a node that
 * real peers must refuse as `incompatible` without building an old or future release. It
 * changes nothing else: such a node decodes frames as this build does, so two nodes with the
 * same overridden major refuse each other too. Not for production use (docs/configuration.md).
 *
 * Pure: the environment is passed in.
 */

import { errors } from "../../protocol/errors.js";
import { PROTOCOL_VERSION, type ProtocolVersion } from "../../protocol/peer/version.js";

export const TEST_PROTOCOL_MAJOR_ENV = "HEARTH_TEST_PROTOCOL_MAJOR";

/** The version to announce; throws HEARTH_CONFIG_INVALID for a knob that is not 0-65535. */
export function announcedProtocolVersion(env: NodeJS.ProcessEnv): ProtocolVersion {
  const raw = env[TEST_PROTOCOL_MAJOR_ENV];
  if (raw === undefined || raw.trim() === "") return PROTOCOL_VERSION;
  const text = raw.trim();
  const major = Number(text);
  if (!/^\d{1,5}$/.test(text) || major > 65_535) {
    throw errors.configInvalid(`${TEST_PROTOCOL_MAJOR_ENV}: expected an integer from 0 to 65535, got ${JSON.stringify(raw.slice(0, 20))}`, {
      param: TEST_PROTOCOL_MAJOR_ENV,
    });
  }
  return { major, minor: PROTOCOL_VERSION.minor };
}
