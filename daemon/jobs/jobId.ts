/**
 * Batch job ids: generated here, from random bytes, and checked against one strict pattern
 * before a job id is ever joined into a path. An id from the network (a URL segment) that does
 * not match is simply an unknown job; it never reaches the filesystem.
 */

import { randomBytes } from "node:crypto";

const JOB_ID_PATTERN = /^job_[0-9a-f]{24}$/;

export function newJobId(): string {
  return `job_${randomBytes(12).toString("hex")}`;
}

export function isValidJobId(value: unknown): value is string {
  return typeof value === "string" && JOB_ID_PATTERN.test(value);
}
