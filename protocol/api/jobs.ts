/**
 * Batch jobs under /hearth/v1/jobs (docs/api.md, "Batch jobs"): the job as POST, GET and
 * cancel answer it, the list, and the refusal of an input with invalid lines. The output
 * (GET .../output) is JSONL, protocol/batch/batchOutput.ts.
 *
 * Job ids are part of the contract: the daemon generates them (daemon/jobs/jobId.ts), and
 * both sides check them against one pattern before one goes into a path or a URL.
 *
 * Pure: no I/O.
 */

import { z } from "zod";

const JOB_ID_PATTERN = /^job_[0-9a-f]{24}$/;

export function isValidJobId(value: unknown): value is string {
  return typeof value === "string" && JOB_ID_PATTERN.test(value);
}

export const jobStatusSchema = z.enum(["queued", "running", "completed", "cancelled"]);

export const jobNodeViewSchema = z.object({
  node_id: z.string(),
  /** Items this node finished for the job (over all runs of it). */
  done: z.number(),
  in_flight: z.number(),
  /** Recent pace (last 30 s) while the job runs; the average over the run once it has finished. */
  items_per_second: z.number(),
});

export const jobViewSchema = z.object({
  id: z.string().regex(JOB_ID_PATTERN),
  object: z.literal("hearth.job"),
  status: jobStatusSchema,
  model: z.string(),
  /** Unix seconds. */
  created_at: z.number(),
  started_at: z.number().nullable(),
  finished_at: z.number().nullable(),
  request_counts: z.object({ total: z.number(), completed: z.number(), failed: z.number() }),
  progress: z.object({ done: z.number(), total: z.number(), items_per_second: z.number(), eta_seconds: z.number().nullable() }),
  nodes: z.array(jobNodeViewSchema),
  skip_invalid: z.boolean(),
  invalid_lines: z.number(),
});

/** GET /hearth/v1/jobs: every job, newest first. */
export const jobListSchema = z.object({
  object: z.literal("list"),
  data: z.array(jobViewSchema),
});

/** POST /hearth/v1/jobs refusing an input (400 HEARTH_BATCH_INVALID): the error, and the first invalid lines. */
export const batchRefusalSchema = z.object({
  error: z.object({ message: z.string(), type: z.string(), param: z.string().nullable(), code: z.string() }),
  invalid_line_count: z.number(),
  invalid_lines: z.array(
    z.object({
      /** 1-based line number in the input. */
      line: z.number(),
      custom_id: z.string().nullable(),
      code: z.string(),
      param: z.string().nullable(),
      message: z.string(),
    }),
  ),
});

export type JobStatus = z.infer<typeof jobStatusSchema>;
export type JobNodeView = z.infer<typeof jobNodeViewSchema>;
export type JobView = z.infer<typeof jobViewSchema>;
export type JobList = z.infer<typeof jobListSchema>;
export type BatchRefusal = z.infer<typeof batchRefusalSchema>;
