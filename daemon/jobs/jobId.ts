/**
 * Batch job ids are generated here, from random bytes, in the one form the jobs API allows
 * (`isValidJobId` in protocol/api/jobs.ts). Every id is checked against that pattern before
 * it is ever joined into a path: an id from the network (a URL segment) that does not match
 * is simply an unknown job; it never reaches the filesystem.
 */

import { randomBytes } from "node:crypto";

export function newJobId(): string {
  return `job_${randomBytes(12).toString("hex")}`;
}
